"""ONNX export and the ONNX Runtime backend: parity with PyTorch, the golden tracker run, torch-free use."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from fartrack.config import load_config  # noqa: E402
from fartrack.data.synthetic import moving_box_sequence  # noqa: E402
from fartrack.export.backend import OnnxRuntimeBackend  # noqa: E402
from fartrack.export.exporter import FrameNetwork, export_onnx, frame_inputs, verify_export  # noqa: E402
from fartrack.export.standalone import resize_bilinear  # noqa: E402
from fartrack.models.build import init_weights  # noqa: E402
from fartrack.models.encoder import FARTrackNet, NetConfig  # noqa: E402
from fartrack.tracker import FARTracker, TrackerParams, build_tracker  # noqa: E402

from conftest import REPO_ROOT  # noqa: E402


def _net(sparse=True) -> FARTrackNet:
    torch.manual_seed(0)
    net = FARTrackNet(NetConfig(sparse=sparse))
    init_weights(net)
    with torch.no_grad():
        for block in net.backbone.layers(net.cfg.depth):
            block.attn.qkv.weight.mul_(5)
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = _net()
    params = TrackerParams(depth=3)
    model, template = export_onnx(net, params, tmp_path_factory.mktemp("onnx") / "model.onnx", depth=3)
    return net, params, model, template


def test_export_writes_both_graphs_with_static_shapes_and_metadata(exported):
    net, params, model, template = exported
    assert model.is_file() and template.is_file() and template.name == "model.template.onnx"
    runtime = OnnxRuntimeBackend(model)
    shapes = {i.name: i.shape for i in runtime.frame.get_inputs()}
    assert shapes == {"slot_tokens": [1, 245, 192], "slot_keep": [245], "search": [1, 3, 224, 224]}
    assert {o.name: o.shape for o in runtime.frame.get_outputs()} == {"logits": [1, 4, 605], "scores": [1, 49]}
    meta = runtime.metadata
    assert meta["depth"] == 3 and meta["num_pruned"] == 12 and meta["decode"] == "mean"


def test_onnxruntime_logits_and_scores_match_pytorch(exported):
    net, params, model, _ = exported
    assert verify_export(net, params, model, 3) < 1e-4
    g = torch.Generator().manual_seed(5)
    inputs = frame_inputs(net)
    inputs["slot_tokens"] = torch.randn(inputs["slot_tokens"].shape, generator=g)
    inputs["search"] = torch.randn(inputs["search"].shape, generator=g)
    inputs["slot_keep"][torch.randperm(196, generator=g)[:30]] = False
    inputs["slot_keep"][-49:] = False  # the newest slot is always kept, whatever the input says
    with torch.inference_mode():
        logits, scores = FrameNetwork(net, 3, params.sparsify)(*inputs.values())
    runtime_logits, runtime_scores = OnnxRuntimeBackend(model).run({k: v.numpy() for k, v in inputs.items()})
    assert (runtime_logits - logits).abs().max() < 1e-4
    assert (runtime_scores - scores).abs().max() < 1e-6


@pytest.mark.parametrize("sparse", [True, False])
def test_fused_runtime_graph_and_portable_graph_compute_the_same_network(sparse, tmp_path):
    """The default graph (ONNX Runtime kernels) and the portable one (standard operators) both match PyTorch."""
    import onnx

    net = _net(sparse=sparse)
    params = TrackerParams(depth=4)
    fused, _ = export_onnx(net, params, tmp_path / "fused.onnx", depth=4)
    portable, _ = export_onnx(net, params, tmp_path / "portable.onnx", depth=4, portable=True)
    fused_graph, portable_graph = onnx.load(str(fused)).graph, onnx.load(str(portable)).graph
    fused_ops = [node.op_type for node in fused_graph.node]
    assert fused_ops.count("MultiHeadAttention") == 4 and fused_ops.count("BiasGelu") == 4
    assert all(node.domain in ("", "ai.onnx") for node in portable_graph.node)
    assert len(fused_graph.node) < len(portable_graph.node) / 2
    for model in (fused, portable):
        assert verify_export(net, params, model, 4) < 1e-4
    runtimes = [OnnxRuntimeBackend(m) for m in (fused, portable)]
    assert [i.name for i in runtimes[0].frame.get_inputs()] == [i.name for i in runtimes[1].frame.get_inputs()]
    assert [o.name for o in runtimes[0].frame.get_outputs()] == [o.name for o in runtimes[1].frame.get_outputs()]


@pytest.mark.parametrize(
    "config, depth, query, extra",
    [
        ({}, 1, "center1x1", "none"),  # the first layer is also the command-only last layer
        ({"num_templates": 2}, 3, "search_all", "template"),
        ({"num_templates": 3, "prenum": 2}, 2, "center3x3", "command"),
    ],
)
def test_runtime_graph_logits_and_scores_for_model_variants(config, depth, query, extra, tmp_path):
    """The written graph against FrameNetwork for layouts and keep-mask rules beyond the reference's."""
    from fartrack.models.sparsify import SparsifyConfig

    torch.manual_seed(0)
    net = FARTrackNet(NetConfig(sparse=True, **config))
    init_weights(net)
    net.eval()
    params = TrackerParams(depth=depth, sparsify=SparsifyConfig(query=query, extra_term=extra))
    g = torch.Generator().manual_seed(1)
    inputs = frame_inputs(net)
    inputs["slot_tokens"] = torch.randn(inputs["slot_tokens"].shape, generator=g)
    inputs["search"] = torch.randn(inputs["search"].shape, generator=g)
    if "trajectory_ids" in inputs:
        inputs["trajectory_ids"] = torch.randint(0, 600, inputs["trajectory_ids"].shape, generator=g)
    inputs["slot_keep"][torch.randperm(49, generator=g)[:12]] = False
    with torch.inference_mode():
        logits, scores = FrameNetwork(net, depth, params.sparsify)(*inputs.values())
    model, _ = export_onnx(net, params, tmp_path / "variant.onnx", depth=depth)
    runtime_logits, runtime_scores = OnnxRuntimeBackend(model).run({k: v.numpy() for k, v in inputs.items()})
    assert (runtime_logits - logits).abs().max() < 1e-4
    assert ((runtime_scores - scores).abs() / scores.abs()).max() < 1e-5


@pytest.mark.parametrize("rule", ["mean", "argmax", "soft"])
def test_tracker_decode_one_row_at_a_time_is_bitwise_the_batched_decode(rule):
    """The tracker decodes the 4 coordinates row by row (no multi-threaded softmax between backend calls);
    the result must be bitwise the batched decode of every rule."""
    from fartrack.models.vocab import decode_argmax, decode_mean, decode_soft

    batched = {"mean": decode_mean, "argmax": decode_argmax, "soft": decode_soft}[rule]
    tracker = FARTracker(_net(), TrackerParams(depth=1, decode=rule))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(3)
        for scale in (0.1, 3.0, 30.0):
            logits = torch.randn(4, 605, generator=g) * scale
            assert torch.equal(tracker.decode(logits), batched(logits))
    finally:
        torch.set_num_threads(previous)


def test_onnxruntime_tracker_matches_the_fast_tracker(exported):
    net, params, model, _ = exported
    frames, boxes = moving_box_sequence(num_frames=10, height=120, width=160, seed=6)
    runs = {}
    for name, backend in (("torch", None), ("onnxruntime", OnnxRuntimeBackend(model))):
        tracker = FARTracker(net, params, backend=backend)
        tracker.initialize(frames[0], boxes[0])
        out, logits = [], []
        for frame in frames[1:]:
            out.append(tracker.track(frame))
            logits.append(tracker.last_logits)
        masks = [t.keep for t in tracker.memory.values() if t.keep is not None]
        runs[name] = (np.array(out), torch.cat(logits), masks)
    assert (runs["torch"][1] - runs["onnxruntime"][1]).abs().max() < 1e-4
    assert np.abs(runs["torch"][0] - runs["onnxruntime"][0]).max() < 1e-3
    assert all(torch.equal(a, b) for a, b in zip(runs["torch"][2], runs["onnxruntime"][2]))


def test_build_tracker_rejects_unknown_backends_and_mismatched_models(exported):
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full")
    with pytest.raises(ValueError, match="backend"):
        build_tracker(cfg, None, layers=1, backend="tensorrt")
    _, _, model, _ = exported
    with pytest.raises(ValueError, match="depth"):  # exported with 3 layers, asked for 6
        build_tracker(cfg, None, layers=6, backend="onnxruntime", onnx_model=model)


def test_golden_tracker_run_through_onnxruntime(official_dir):
    """The reference tracker's boxes, logits and keep-masks, with the network in ONNX Runtime."""
    expected = json.loads((official_dir / "tracker_expected.json").read_text())["runs"]
    trace = np.load(official_dir / "tracker_trace.npz")
    data = np.load(official_dir / "tracker_sequence.npz")
    frames, init = data["frames"], data["init_bbox_xywh"]
    cases = [("fartrack_sparse", "fartrack_sparse_224_full", "checkpoint_sparse.pth", 6, "sparse_d6", 40),
             ("fartrack", "fartrack_tiny_224_full", "checkpoint_stage1.pth", None, "stage1_d15", 12)]
    for script, config, checkpoint, layers, run, count in cases:
        tracker = build_tracker(load_config(script, config), official_dir / checkpoint, layers=layers,
                                backend="onnxruntime")
        tracker.initialize(frames[0], init)
        boxes, logits, masks = [list(map(float, init))], [], []
        for frame in frames[1:count]:
            boxes.append(tracker.track(frame))
            logits.append(tracker.last_logits[0])
            if tracker.net.cfg.sparse:
                masks.append(tracker.memory[tracker.last_slots[-1]].keep)
        assert np.abs(np.array(boxes) - np.array(expected[run]["boxes_xywh"][:count])).max() <= 1e-4, run
        assert (torch.stack(logits) - torch.from_numpy(trace[f"{run}/logits"][: count - 1])).abs().max() <= 1e-4, run
        if masks:
            assert torch.equal(torch.stack(masks), torch.from_numpy(trace[f"{run}/keep_out"][: count - 1, 0]))


def test_export_cli_and_torch_free_runtime(official_dir, tmp_path):
    """export_onnx.py on the golden checkpoint, then the numpy-only helper in a fresh process without torch."""
    out = tmp_path / "pico.onnx"
    cmd = [sys.executable, str(REPO_ROOT / "tracking" / "export_onnx.py"), "--checkpoint",
           str(official_dir / "checkpoint_sparse.pth"), "--config", "fartrack_sparse_224_full", "--layers", "6",
           "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.is_file() and (tmp_path / "pico.template.onnx").is_file()
    assert "ONNX Runtime vs PyTorch" in result.stdout
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from fartrack.export.standalone import OnnxTracker
        data = np.load({str(official_dir / "tracker_sequence.npz")!r})
        frames, init = data["frames"], data["init_bbox_xywh"]
        tracker = OnnxTracker({str(out)!r}, threads=1)
        tracker.initialize(frames[0], init)
        boxes = [list(map(float, init))] + [tracker.track(f) for f in frames[1:]]
        assert "torch" not in sys.modules, "the standalone helper imported torch"
        assert "cv2" not in sys.modules, "the standalone helper imported OpenCV"
        print(json.dumps(boxes))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    boxes = np.array(json.loads(run.stdout))
    expected = json.loads((official_dir / "tracker_expected.json").read_text())["runs"]["sparse_d6"]["boxes_xywh"]
    assert np.abs(boxes - np.array(expected)).max() <= 1e-4


def test_export_cli_reports_a_missing_checkpoint(tmp_path):
    missing = tmp_path / "nope.pth.tar"
    cmd = [sys.executable, str(REPO_ROOT / "tracking" / "export_onnx.py"), "--checkpoint", str(missing),
           "--config", "fartrack_sparse_224_full", "--out", str(tmp_path / "m.onnx")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and str(missing) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_numpy_resize_is_bit_exact_with_opencv():
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for side in (1, 7, 61, 112, 150, 224, 333, 448, 1001):
        image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        for size in (112, 224):
            assert np.array_equal(resize_bilinear(image, size), cv2.resize(image, (size, size))), (side, size)


def test_standalone_crop_equals_the_tracker_crop():
    from fartrack.export.standalone import crop_around_box as numpy_crop
    from fartrack.tracker.crop import crop_around_box

    frames, _ = moving_box_sequence(num_frames=1, height=90, width=130, seed=7)
    for box in ([10, 20, 30, 25], [-15, 60, 40, 50], [100, -5, 60, 30], [0, 0, 130, 90]):
        for factor, size in ((2.0, 112), (4.0, 224)):
            crop, factor_ = crop_around_box(frames[0], box, factor, size)
            crop_np, factor_np = numpy_crop(frames[0], box, factor, size)
            assert factor_ == factor_np and np.array_equal(crop, crop_np), box


def test_auto_backend_prefers_onnxruntime_for_the_fast_cpu_path():
    from fartrack.tracker.build import resolve_backend

    assert resolve_backend("auto", "cpu") == "onnxruntime"
    assert resolve_backend("auto", "cpu", mode="masked") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("tvm")


def test_export_of_a_model_variant(tmp_path):
    """Trajectory tokens, 3 template slots and the paper's 3x3 + command-token importance, through ONNX."""
    from fartrack.models.sparsify import SparsifyConfig

    torch.manual_seed(1)
    net = FARTrackNet(NetConfig(sparse=True, prenum=3, num_templates=3))
    init_weights(net)
    net.eval()
    params = TrackerParams(depth=2, sparsify=SparsifyConfig(query="center3x3", extra_term="command"))
    model, _ = export_onnx(net, params, tmp_path / "variant.onnx", depth=2)
    runtime = OnnxRuntimeBackend(model)
    assert [i.name for i in runtime.frame.get_inputs()] == ["slot_tokens", "slot_keep", "search", "trajectory_ids"]
    frames, boxes = moving_box_sequence(num_frames=7, height=100, width=140, seed=1)
    results = []
    for backend in (None, runtime):
        tracker = FARTracker(net, params, backend=backend)
        tracker.initialize(frames[0], boxes[0])
        results.append(np.array([tracker.track(frame) for frame in frames[1:]]))
    assert np.abs(results[0] - results[1]).max() < 1e-3


def test_int8_quantisation_is_an_optional_smaller_copy(exported, tmp_path):
    from fartrack.export.exporter import quantize_int8

    net, params, model, _ = exported
    quantized, template = quantize_int8(model, tmp_path / "int8.onnx")
    assert template.read_bytes() == (model.parent / "model.template.onnx").read_bytes()
    assert quantized.stat().st_size < model.stat().st_size / 2  # int8 weights
    diff = verify_export(net, params, quantized, 3)
    assert 0 < diff < 5  # runs and approximates (it is never bitwise, hence never the default)
