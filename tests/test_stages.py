"""Stage logic on a tiny random network: overfit checks, DDP ``last`` flags, batch sizes, no batch mutation.

Tiny configs (32-px templates, 64-px search, width 32, 2 heads, 3 layers) keep every test to about a second
on a CPU. Each overfit check trains on one fixed batch and asserts the loss falls below a fraction of its
start value.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fartrack.config import load_config
from fartrack.data.synthetic import moving_box_sequence
from fartrack.models.build import build_network
from fartrack.train.stages import DistillStage, FrameStage, SparseStage, build_stage, skip_layers, unwrap

TINY = {
    "DATA.TEMPLATE.SIZE": 32,
    "DATA.SEARCH.SIZE": 64,
    "MODEL.EMBED_DIM": 32,
    "MODEL.NUM_HEADS": 2,
    "MODEL.LAYERS": 3,
    "TRAIN.DROP_PATH_RATE": 0.0,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_cfg(script: str, **extra):
    config = {"fartrack": "fartrack_tiny_224_full", "fartrack_distill": "fartrack_distill_224_full",
              "fartrack_sparse": "fartrack_sparse_224_full"}[script]
    overrides = dict(TINY)
    if script == "fartrack_distill":
        overrides["MODEL.EXITS"] = [1, 2, 3]
    if script == "fartrack_sparse":
        overrides["DATA.SEARCH.NUMBER"] = 4
    overrides.update(extra)
    return load_config(script, config, overrides=overrides)


def tiny_net(cfg, seed: int = 0):
    torch.manual_seed(seed)
    return build_network(cfg)


def frame_batch(cfg, batch: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    t, s = cfg.DATA.TEMPLATE.SIZE, cfg.DATA.SEARCH.SIZE
    xy = torch.rand(batch, 2, generator=g) * 0.4 + 0.2
    wh = torch.rand(batch, 2, generator=g) * 0.2 + 0.2
    return {
        "template_images": torch.randn(batch, 5, 3, t, t, generator=g),
        "template_anno": torch.rand(batch, 5, 4, generator=g),
        "search_images": torch.randn(batch, 3, s, s, generator=g),
        "search_anno": torch.cat([xy, wh], dim=1),
        "valid": torch.ones(batch, dtype=torch.bool),
        "dataset": ["SYNTHETIC"] * batch,
        "seq_name": [f"seq{i}" for i in range(batch)],
    }


def clip_batch(num_clips: int, num_search: int = 4, seed: int = 0) -> list[dict]:
    clips = []
    for c in range(num_clips):
        frames, boxes = moving_box_sequence(5 + num_search, 96, 96, seed=seed + c)
        clips.append(
            {
                "template_images": [frames[i] for i in range(5)],
                "template_annos": boxes[:5].copy(),
                "search_images": [frames[i] for i in range(5, 5 + num_search)],
                "search_annos": boxes[5:].copy(),
                "dataset": "SYNTHETIC",
                "seq_name": f"clip{c}",
            }
        )
    return clips


def overfit(stage, net, batch, steps: int, lr: float = 2e-3) -> tuple[float, float]:
    """(first, last) batch loss over ``steps`` AdamW steps on one fixed batch."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    net.train()
    values = []
    for _ in range(steps):
        opt.zero_grad()
        total = 0.0
        for item in stage.losses(net, batch, device="cpu"):
            item.loss.backward()
            total += item.loss.item()
        opt.step()
        values.append(total)
    return values[0], min(values[-3:])


def test_build_stage_per_script():
    assert isinstance(build_stage(tiny_cfg("fartrack")), FrameStage)
    assert isinstance(build_stage(tiny_cfg("fartrack_distill")), DistillStage)
    stage = build_stage(tiny_cfg("fartrack_sparse"))
    assert isinstance(stage, SparseStage) and stage.data_mode == "clip"
    assert build_stage(tiny_cfg("fartrack")).data_mode == "frame"


def test_stage1_overfits_and_leaves_batch_untouched():
    cfg = tiny_cfg("fartrack")
    net, batch = tiny_net(cfg), frame_batch(cfg)
    before = copy.deepcopy(batch)
    first, last = overfit(build_stage(cfg), net, batch, steps=25)
    assert last < 0.6 * first, (first, last)
    for key in ("search_anno", "template_images", "search_images"):
        assert torch.equal(batch[key], before[key]), key


def test_stage1_shallow_from_scratch_uses_only_first_layers():
    """Table-12 baseline: MODEL.LAYERS < depth trains the first layers only; the others get no gradient."""
    cfg = tiny_cfg("fartrack", **{"MODEL.LAYERS": 2})
    net = tiny_net(cfg)
    item = next(iter(build_stage(cfg).losses(net, frame_batch(cfg), device="cpu")))
    item.loss.backward()
    assert net.backbone.blocks[1].mlp.fc2.weight.grad.abs().sum() > 0
    assert net.backbone.blocks[2].mlp.fc2.weight.grad is None


def test_stage2_overfits_with_all_exits():
    cfg = tiny_cfg("fartrack_distill")
    net, batch = tiny_net(cfg), frame_batch(cfg)
    stage = build_stage(cfg)
    item = next(iter(stage.losses(net, batch, device="cpu")))
    assert {f"Loss/giou_{i}" for i in range(3)} <= set(item.stats) and "Loss/KL_1" in item.stats
    assert "Loss/KL_2" not in item.stats  # 3 outputs -> 2 adjacent pairs
    first, last = overfit(stage, net, batch, steps=25)
    assert last < 0.6 * first, (first, last)


def test_kl_teacher_is_detached():
    """With only the KL weight on, the deepest output gets no gradient (it is every term's teacher)."""
    cfg = tiny_cfg("fartrack_distill", **{"TRAIN.CE_WEIGHT": 0.0, "TRAIN.GIOU_WEIGHT": 0.0, "TRAIN.KL_WEIGHT": 1.0})
    for mode in ("adjacent", "deep_to_shallow"):
        net = tiny_net(cfg)
        stage = DistillStage(build_stage(cfg).weights, [1, 2, 3], 3, mode=mode)
        item = next(iter(stage.losses(net, frame_batch(cfg), device="cpu")))
        item.loss.backward()
        assert item.loss.item() > 0
        grad = net.backbone.blocks[2].mlp.fc2.weight.grad  # layer 3 only feeds the teacher
        assert grad is None or not grad.any(), mode
        assert net.backbone.blocks[0].mlp.fc2.weight.grad.abs().sum() > 0, mode


def test_cross_layer_distillation_skips_removed_layers():
    cfg = tiny_cfg("fartrack_distill", **{"MODEL.EXITS": [3], "TRAIN.REMOVE_LAYERS": [2]})
    stage = build_stage(cfg)
    assert isinstance(stage, DistillStage) and stage.remove_layers == (2,)
    net, batch = tiny_net(cfg), frame_batch(cfg)
    item = next(iter(stage.losses(net, batch, device="cpu")))
    item.loss.backward()
    assert "Loss/KL" in item.stats and item.stats["Loss/KL"] > 0
    assert net.backbone.blocks[1].attn.qkv.weight.grad is None  # skipped by the student, teacher has no grad
    assert net.backbone.blocks[2].attn.qkv.weight.grad.abs().sum() > 0
    # the hooks are removed afterwards: a plain forward differs from the student forward
    net.eval()
    with torch.no_grad():
        full = net(batch["template_images"], batch["search_images"], depth=3, exits=()).logits
        with skip_layers(net, [2]):
            student = net(batch["template_images"], batch["search_images"], depth=3, exits=()).logits
        again = net(batch["template_images"], batch["search_images"], depth=3, exits=()).logits
    assert not torch.allclose(full, student) and torch.equal(full, again)
    first, last = overfit(stage, net, batch, steps=25)
    assert last < 0.6 * first, (first, last)


def test_remove_layers_needs_single_output():
    cfg = tiny_cfg("fartrack_distill", **{"TRAIN.REMOVE_LAYERS": [2]})
    with pytest.raises(ValueError, match="MODEL.EXITS"):
        build_stage(cfg)


@pytest.mark.parametrize("num_clips", [1, 3])
def test_stage3_any_batch_size_and_last_flag(num_clips):
    cfg = tiny_cfg("fartrack_sparse")
    net = tiny_net(cfg)
    batch = clip_batch(num_clips)
    before = copy.deepcopy(batch)
    items = list(build_stage(cfg).losses(net, batch, device="cpu"))
    assert [i.last for i in items] == [False] * (num_clips - 1) + [True]
    assert all(i.stats == {} for i in items[:-1]) and items[-1].stats["clips"] == num_clips
    assert all(torch.isfinite(i.loss) and i.loss.requires_grad for i in items)
    for a, b in zip(before, batch):
        assert np.array_equal(a["search_annos"], b["search_annos"])
        assert all(np.array_equal(x, y) for x, y in zip(a["search_images"], b["search_images"]))


def test_stage3_chunks_sum_to_the_clip_loss():
    cfg = tiny_cfg("fartrack_sparse")
    net = tiny_net(cfg).eval()  # eval: no drop path, deterministic
    batch = clip_batch(2)
    whole = list(SparseStage(build_stage(cfg).weights, build_stage(cfg).params, chunk=0).losses(net, batch, device="cpu"))
    chunked = list(SparseStage(build_stage(cfg).weights, build_stage(cfg).params, chunk=2).losses(net, batch, device="cpu"))
    assert len(whole) == 2 and len(chunked) == 4  # 3 tracked frames per clip -> chunks of 2 + 1
    assert [i.last for i in chunked] == [False, False, False, True]
    total_whole = sum(i.loss for i in whole)
    total_chunked = sum(i.loss for i in chunked)
    torch.testing.assert_close(total_chunked, total_whole, rtol=1e-5, atol=1e-6)
    assert chunked[-1].stats["Loss/total"] == pytest.approx(whole[-1].stats["Loss/total"], rel=1e-5)


def test_stage3_overfits():
    cfg = tiny_cfg("fartrack_sparse", **{"TRAIN.CE_WEIGHT": 0.0})
    net = tiny_net(cfg)
    first, last = overfit(build_stage(cfg), net, clip_batch(2), steps=30, lr=3e-3)
    assert last < 0.75 * first, (first, last)


def test_stage3_skips_unusable_clips_and_says_why(caplog):
    cfg = tiny_cfg("fartrack_sparse")
    net = tiny_net(cfg)
    batch = clip_batch(3)
    batch[1]["template_annos"][2] = [10, 10, 0, 5]  # zero width: no template crop possible
    with caplog.at_level("WARNING", logger="fartrack.train.stages"):
        items = list(build_stage(cfg).losses(net, batch, device="cpu"))
    assert len(items) == 2 and items[-1].stats["skipped_clips"] == 1
    assert "SYNTHETIC/clip1" in caplog.text and "template box 2" in caplog.text
    from fartrack.train.rollout import RolloutParams, rollout

    result = rollout(unwrap(net), batch, RolloutParams.from_config(cfg))
    assert [i for i, _ in result.skipped] == [1] and "template box 2" in result.skipped[0][1]
    assert "clip1" in result.skipped[0][1]


def test_stage3_all_clips_skipped_still_yields_one_zero_item():
    cfg = tiny_cfg("fartrack_sparse")
    net = tiny_net(cfg)
    batch = clip_batch(1)
    batch[0]["search_annos"][0] = [np.nan, 0, 0, 0]
    items = list(build_stage(cfg).losses(net, batch, device="cpu"))
    assert len(items) == 1 and items[0].last and items[0].loss.item() == 0.0
    assert items[0].stats == {"clips": 0.0, "skipped_clips": 1.0}
    items[0].loss.backward()  # a graph through the network exists (keeps DDP ranks in step)


def test_trajectory_tokens_are_refused_at_build_time():
    with pytest.raises(ValueError, match="MODEL.PRENUM"):
        build_stage(tiny_cfg("fartrack_sparse", **{"MODEL.PRENUM": 3}))


def test_exits_beyond_the_trained_depth_are_an_error():
    with pytest.raises(ValueError, match="MODEL.EXITS"):
        build_stage(tiny_cfg("fartrack_distill", **{"MODEL.LAYERS": 2}))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stages_run_on_cuda():
    for script, batch in (("fartrack", None), ("fartrack_distill", None), ("fartrack_sparse", clip_batch(2))):
        cfg = tiny_cfg(script)
        net = tiny_net(cfg).cuda()
        batch = frame_batch(cfg) if batch is None else batch
        for item in build_stage(cfg).losses(net, batch, device="cuda"):
            assert item.loss.is_cuda and torch.isfinite(item.loss)
            item.loss.backward()
