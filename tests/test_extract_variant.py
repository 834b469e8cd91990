"""``tracking/extract_variant.py``: nano/pico (depth-prefix) and layer-removed variants of a checkpoint.

The variant must reproduce the source network run at that depth exactly, in a forward and in the tracker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fartrack.config import load_config
from fartrack.data.synthetic import moving_box_sequence
from fartrack.models.build import build_network
from fartrack.models.checkpoint import CheckpointError, save_checkpoint
from fartrack.models.pretrained import load_variant_network
from fartrack.tracker.tracker import FARTracker, tracker_params_from
from fartrack.train.stages import skip_layers
from fartrack.tracker.build import build_tracker
from tiny_models import load_script

REPO = Path(__file__).resolve().parents[1]


def _cli():
    return load_script(REPO / "tracking" / "extract_variant.py", "extract_variant").main


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cfg():
    return load_config(
        "fartrack_distill",
        "fartrack_distill_224_full",
        overrides={
            "MODEL.EMBED_DIM": 32, "MODEL.NUM_HEADS": 2, "DATA.TEMPLATE.SIZE": 32, "DATA.SEARCH.SIZE": 64,
            "TEST.TEMPLATE_SIZE": 32, "TEST.SEARCH_SIZE": 64,
        },
    )


@pytest.fixture()
def distilled(cfg, tmp_path):
    torch.manual_seed(3)
    net = build_network(cfg).eval()
    path = tmp_path / "FARTrackDistill_ep0500.pth.tar"
    save_checkpoint(path, net, net_type="FARTrackDistill", epoch=500)
    return net, path


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 5, 3, 32, 32, generator=g), torch.randn(2, 3, 64, 64, generator=g)


@pytest.mark.parametrize("layers", [6, 10, 13])
def test_prefix_variant_equals_source_at_that_depth(cfg, distilled, tmp_path, layers):
    net, path = distilled
    out = tmp_path / f"variant{layers}.pth.tar"
    assert _cli()(["--checkpoint", str(path), "--layers", str(layers), "--out", str(out)]) == 0
    raw = torch.load(out, weights_only=True)
    assert raw["layers"] == layers and raw["net_type"] == "FARTrackDistill" and raw["epoch"] == 500
    blocks = {int(k.split(".")[2]) for k in raw["net"] if k.startswith("backbone.blocks.")}
    extension = {int(k.split(".")[2]) for k in raw["net"] if k.startswith("backbone.extension.")}
    assert blocks == set(range(min(layers, 12))) and extension == set(range(max(0, layers - 12)))
    variant = load_variant_network(cfg, out)
    assert variant.cfg.depth == layers
    assert sum(p.numel() for p in variant.parameters()) < sum(p.numel() for p in net.parameters())
    templates, search = _inputs()
    with torch.no_grad():
        expected = net(templates, search, depth=layers).logits
        got = variant(templates, search).logits
    assert torch.equal(got, expected)


def test_variant_tracks_like_the_source_at_that_depth(cfg, distilled, tmp_path):
    net, path = distilled
    out = tmp_path / "pico.pth.tar"
    assert _cli()(["--checkpoint", str(path), "--layers", "6", "--out", str(out)]) == 0
    frames, boxes = moving_box_sequence(6, 96, 128, seed=2)
    source = FARTracker(net, tracker_params_from(cfg, depth=6))
    # the path test.py / video_demo.py take: the depth comes from the variant file itself
    variant = build_tracker(cfg, out, device="cpu", backend="torch")
    assert variant.net.cfg.depth == 6
    for tracker in (source, variant):
        tracker.initialize(frames[0], boxes[0])
    for frame in frames[1:]:
        assert variant.track(frame) == source.track(frame)


def test_removed_layers_variant_equals_student_forward(cfg, distilled, tmp_path):
    net, path = distilled
    out = tmp_path / "student.pth.tar"
    assert _cli()(["--checkpoint", str(path), "--remove_layers", "3", "14", "--out", str(out)]) == 0
    raw = torch.load(out, weights_only=True)
    assert raw["kept_layers"] == [1, 2] + list(range(4, 14)) + [15] and raw["layers"] == 13
    variant = load_variant_network(cfg, out)
    templates, search = _inputs(1)
    with torch.no_grad(), skip_layers(net, [3, 14]):
        expected = net(templates, search).logits
    with torch.no_grad():
        got = variant(templates, search).logits
    assert torch.equal(got, expected)


def test_bad_requests_fail_with_a_message_and_keep_files(distilled, tmp_path, capsys):
    _, path = distilled
    main = _cli()
    assert main(["--checkpoint", str(path), "--layers", "16", "--out", str(tmp_path / "x.pth.tar")]) == 2
    assert "--layers 16 is out of range 1..15" in capsys.readouterr().err
    existing = tmp_path / "keep.pth.tar"
    existing.write_bytes(b"user data")
    assert main(["--checkpoint", str(path), "--layers", "6", "--out", str(existing)]) == 2
    assert "exists" in capsys.readouterr().err and existing.read_bytes() == b"user data"
    assert main(["--checkpoint", str(tmp_path / "missing.pth.tar"), "--layers", "6", "--out", str(tmp_path / "y")]) == 2
    assert "missing.pth.tar" in capsys.readouterr().err


def test_load_variant_network_refuses_a_full_checkpoint(cfg, distilled):
    _, path = distilled
    with pytest.raises(CheckpointError, match="layers"):
        load_variant_network(cfg, path)
