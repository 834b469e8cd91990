"""Stage-3 masks, rollout and loss pass against ``training/sparse_train_mask.pt`` (reference golden file).

Uses ``../checkpoint_sparse.pth`` (weights) and ``../tracker_sequence.npz`` (frames). Integers (masks, crop
sides, uint8 crops) must match exactly; float geometry and boxes to 1e-4 px (our decode path rounds once in
float32 where the reference keeps float64 in places); loss scalars rtol 1e-5.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from fartrack.config import load_config
from fartrack.models.build import build_network
from fartrack.models.checkpoint import load_model_weights
from fartrack.train.rollout import (
    RolloutParams,
    channel_mean,
    clip_keep_mask,
    crop_side,
    crops_to_tensor,
    rollout,
    subwindow_crop,
)
from fartrack.train.stages import SparseStage, build_stage


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref(training_fixtures_dir):
    return torch.load(training_fixtures_dir / "sparse_train_mask.pt", weights_only=True)


@pytest.fixture(scope="module")
def cfg():
    return load_config("fartrack_sparse", "fartrack_sparse_224_full")


@pytest.fixture(scope="module")
def net(official_dir, cfg):
    model = build_network(cfg)
    load_model_weights(model, official_dir / "checkpoint_sparse.pth")
    return model.eval()


@pytest.fixture(scope="module")
def clips(official_dir, ref):
    frames = np.load(official_dir / "tracker_sequence.npz")["frames"]
    out = []
    for c, variant in enumerate(ref["clip_variant"]):
        f = np.ascontiguousarray(frames[:, :, ::-1]) if variant == "mirrored_frames" else frames
        out.append(
            {
                "template_images": [f[i] for i in ref["clip_template_frame_ids"][c].tolist()],
                "template_annos": ref["clip_template_annos_xywh"][c].double().numpy(),
                "search_images": [f[i] for i in ref["clip_search_frame_ids"][c].tolist()],
                "search_annos": ref["clip_search_annos_xywh"][c].double().numpy(),
                "dataset": "fixture",
                "seq_name": f"clip{c}_{variant}",
            }
        )
    return out


@pytest.fixture(scope="module")
def rolled(net, cfg, clips):
    return rollout(net, clips, RolloutParams.from_config(cfg))


def test_mask_from_fixed_attention(ref):
    attn = ref["fixed_attn_avg"]
    scores = attn[:, 350, :245].reshape(2, 5, 49)
    assert torch.equal(scores, ref["fixed_attn_scores"])
    keep = clip_keep_mask(scores, 12, 445)
    assert torch.equal(keep, ref["fixed_attn_keep"])
    assert keep[:, :196].view(2, 4, 49).sum(-1).eq(37).all() and keep[:, 196:].all()


def test_template_crops(ref, clips):
    stored = ref["stored_crop_clips"].tolist()
    for c, clip in enumerate(clips):
        for s, (frame, box) in enumerate(zip(clip["template_images"], clip["template_annos"])):
            side = crop_side(box[2], box[3], 2.0)
            assert side == ref["template_subwindow_side"][c, s].item()
            center = (box[0] + box[2] / 2, box[1] + box[3] / 2)
            np.testing.assert_allclose(center, ref["template_subwindow_pos"][c, s].numpy(), rtol=0, atol=1e-5)
            avg = channel_mean(frame)
            np.testing.assert_allclose(avg, ref["template_subwindow_avg_chans"][c, s].numpy(), rtol=1e-12)
            crop = subwindow_crop(frame, center, side, 112, avg)
            assert float(crop.astype(np.float64).sum()) == ref["template_crops_sum"][c, s].item()
            if c in stored:
                assert np.array_equal(crop, ref["template_crops_uint8"][stored.index(c), s].numpy())


def test_search_crops_at_reference_geometry(ref, clips):
    stored = ref["stored_crop_clips"].tolist()
    for f in range(2):
        for c, clip in enumerate(clips):
            frame = clip["search_images"][f + 1]
            center = ref["search_subwindow_pos"][f, c].tolist()
            side = int(ref["search_subwindow_side"][f, c].item())
            crop = subwindow_crop(frame, center, side, 224, ref["search_subwindow_avg_chans"][f, c].numpy())
            assert float(crop.astype(np.float64).sum()) == ref["search_crops_sum"][f, c].item()
            if c in stored:
                assert np.array_equal(crop, ref["search_crops_uint8"][f, stored.index(c)].numpy())


def test_rollout_states_masks_and_boxes(ref, rolled):
    assert rolled.skipped == [] and len(rolled.clips) == 8
    for c, clip in enumerate(rolled.clips):
        assert clip.search_sides.tolist() == ref["search_subwindow_side"][:, c].long().tolist()
        np.testing.assert_allclose(clip.search_centers, ref["search_subwindow_pos"][:, c].numpy(), rtol=0, atol=1e-4)
        np.testing.assert_allclose(clip.pred_xywh, ref["rollout_pred_xywh"][:, c].numpy(), rtol=0, atol=1e-4)
        torch.testing.assert_close(clip.crop_boxes, ref["explore_search_anno"][:, c], rtol=0, atol=1e-4)
        assert torch.equal(clip.keep, ref["explore_keep"][:, c])
        torch.testing.assert_close(clip.iou, ref["explore_baseline_iou"][:, c], rtol=0, atol=1e-5)
    assert torch.equal(rolled.clips[0].keep[1], ref["rollout_f1_keep_out"][0])
    assert rolled.clips[0].keep[0].all()


def test_masked_forward_logits(ref, net, rolled):
    templates = torch.stack([c.templates for c in rolled.clips])
    search = torch.stack([c.search[0] for c in rolled.clips])
    keep = torch.stack([c.keep[1] for c in rolled.clips])
    with torch.no_grad():
        logits = net(templates, search, key_keep=keep, exits=()).logits
    torch.testing.assert_close(logits.permute(1, 0, 2), ref["f1_masked_logits"], rtol=0, atol=1e-4)
    assert torch.equal(logits.argmax(-1), ref["f1_masked_tokens"])


def test_loss_pass_per_clip(ref, net, cfg, clips):
    """Clips 0 (plain), 5 (absent GT in the last frame) and 6 (heavily padded first search crop).

    Each clip's mask and loss depend on that clip only, so a 3-clip batch reproduces the reference's 8-clip
    values. Run without autograd to keep the test fast (the gradient path is tested in test_stages.py).
    """
    chosen = [0, 5, 6]
    stage = build_stage(cfg)
    assert isinstance(stage, SparseStage)
    batch = copy.deepcopy([clips[c] for c in chosen])
    with torch.no_grad():  # net is in eval mode: deterministic, as the fixture's loss pass
        items = list(stage.losses(net, batch, device="cpu"))
    assert [i.last for i in items] == [False, False, True]
    expected_losses = ref["losspass_total"][chosen]
    torch.testing.assert_close(torch.stack([i.loss for i in items]), expected_losses, rtol=1e-5, atol=0)
    status = [ref["losspass_status"][c] for c in chosen]
    for key in ("Loss/total", "Loss/giou", "IoU"):
        expected = sum(s[key] for s in status) / len(status)
        assert items[-1].stats[key] == pytest.approx(expected, rel=1e-5), key
    for original, seen in zip([clips[c] for c in chosen], batch):  # the clips are not modified
        assert np.array_equal(original["search_annos"], seen["search_annos"])


def test_network_input_scaling_is_multiplication_by_float32_reciprocal():
    crop = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)[None]
    x = crops_to_tensor(crop, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    expected = torch.arange(256, dtype=torch.float32).reshape(16, 16) * torch.tensor(1 / 255, dtype=torch.float32)
    assert torch.equal(x[0, 0], expected)
