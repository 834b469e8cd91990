"""Training losses against the reference golden file ``training/losses.pt`` (README tolerances).

The stage-level tests run our stages with a stub network that returns the stored logits (as the fixture
generator did with the reference actors), so targets, CE, soft-argmax, SIoU, KL, weights and gradients are
all checked end to end. Fixture logits are [command, batch, V]; ours are (B, 4, V).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fartrack.config import load_config
from fartrack.models.encoder import EncoderOutput
from fartrack.models.vocab import Vocabulary
from fartrack.train.losses import (
    adjacent_kl,
    class_weights,
    frame_targets,
    sequence_targets,
    siou_loss,
    soft_argmax,
    weighted_cross_entropy,
)
from fartrack.train.stages import DistillStage, FrameStage, LossWeights, build_stage

RTOL = 1e-5
GRAD_ATOL = 1e-6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ref(training_fixtures_dir):
    return torch.load(training_fixtures_dir / "losses.pt", weights_only=True)


def _ours(logits_cbv: torch.Tensor) -> torch.Tensor:
    return logits_cbv.permute(1, 0, 2).contiguous()


def _close_nan_aware(a: torch.Tensor, b: torch.Tensor, rtol=RTOL, atol=1e-7) -> None:
    assert torch.equal(torch.isnan(a), torch.isnan(b))
    keep = ~torch.isnan(b)
    torch.testing.assert_close(a[keep], b[keep], rtol=rtol, atol=atol)


class _StubNet(nn.Module):
    """Returns stored logit sets as leaf tensors (so their gradients can be read back)."""

    def __init__(self, outputs: list[torch.Tensor]) -> None:
        super().__init__()
        self.vocab = Vocabulary()
        self.leaves = [o.clone().requires_grad_(True) for o in outputs]
        self.calls = []

    def forward(self, templates, search, **kwargs):
        self.calls.append(kwargs)
        return EncoderOutput(self.leaves[-1], self.leaves[:-1], [], None)


def _frame_batch(anno: torch.Tensor) -> dict:
    b = anno.shape[0]
    return {
        "template_images": torch.zeros(b, 5, 3, 16, 16),
        "search_images": torch.zeros(b, 3, 32, 32),
        "search_anno": anno.clone(),
        "valid": torch.ones(b, dtype=torch.bool),
    }


def test_frame_targets_are_bit_exact(ref):
    targets = frame_targets(ref["s1_search_anno_xywh"])
    assert torch.equal(targets.tokens.to(torch.float32), ref["s1_seq_output"])
    assert torch.equal(targets.tokens.reshape(-1), ref["s1_ce_target"])
    assert torch.equal(targets.box_xyxy, ref["s1_siou_target_xyxy"])


def test_frame_targets_do_not_mutate_input(ref):
    anno = ref["s1_search_anno_xywh"].clone()
    frame_targets(anno)
    assert torch.equal(anno, ref["s1_search_anno_xywh"])
    assert not torch.equal(anno, ref["s1_search_anno_after_actor"])  # the reference's in-place overwrite


def test_class_weights_and_grid(ref):
    assert torch.equal(class_weights(), ref["ce_class_weight"])
    uniform = torch.zeros(1, 4, 605)
    grid_mean = ref["soft_argmax_grid"].mean()
    torch.testing.assert_close(soft_argmax(uniform), grid_mean.expand(1, 4), rtol=RTOL, atol=1e-7)


def test_cross_entropy_and_soft_argmax(ref):
    logits = _ours(ref["s1_logits"])
    tokens = frame_targets(ref["s1_search_anno_xywh"]).tokens
    torch.testing.assert_close(weighted_cross_entropy(logits, tokens), ref["s1_ce"], rtol=RTOL, atol=0)
    torch.testing.assert_close(soft_argmax(logits), ref["s1_decoded_xyxy"], rtol=0, atol=1e-6)


def test_siou_cases_including_nan(ref):
    siou, iou = siou_loss(ref["siou_case_pred_xyxy"], ref["siou_case_target_xyxy"])
    names = ref["siou_case_names"]
    assert torch.isnan(siou[names.index("identical_zero_area")]) and torch.isnan(siou[names.index("inverted_x")])
    _close_nan_aware(siou, ref["siou_case_siou"])
    _close_nan_aware(iou, ref["siou_case_iou"])


def test_siou_per_box_stage1(ref):
    logits = _ours(ref["s1_logits"])
    target = frame_targets(ref["s1_search_anno_xywh"]).box_xyxy
    siou, iou = siou_loss(soft_argmax(logits), target)
    _close_nan_aware(siou, ref["s1_siou_per_box"])
    _close_nan_aware(iou, ref["s1_iou_per_box"])


def test_stage1_loss_stats_and_gradient(ref):
    cfg = load_config("fartrack", "fartrack_tiny_224_full")
    stage = build_stage(cfg)
    assert isinstance(stage, FrameStage)
    net = _StubNet([_ours(ref["s1_logits"])])
    batch = _frame_batch(ref["s1_search_anno_xywh"])
    items = list(stage.losses(net, batch, device="cpu"))
    assert len(items) == 1 and items[0].last
    item = items[0]
    torch.testing.assert_close(item.loss.detach(), ref["s1_total_loss"], rtol=RTOL, atol=0)
    for key, value in ref["s1_status"].items():
        assert item.stats[key] == pytest.approx(value, rel=RTOL), key
    item.loss.backward()
    torch.testing.assert_close(net.leaves[-1].grad.permute(1, 0, 2), ref["s1_grad_logits"], rtol=0, atol=GRAD_ATOL)
    assert torch.equal(batch["search_anno"], ref["s1_search_anno_xywh"])  # the batch is not modified


def test_stage2_loss_kl_and_gradients(ref):
    cfg = load_config("fartrack_distill", "fartrack_distill_224_full")
    stage = build_stage(cfg)
    assert isinstance(stage, DistillStage) and stage.exits == tuple(range(5, 15))
    outputs = [_ours(ref["s2_logits"][e]) for e in range(11)]
    net = _StubNet(outputs)
    anno = ref["s2_search_anno_xywh"]
    assert torch.equal(frame_targets(anno).tokens.to(torch.float32), ref["s2_seq_output"])
    item = next(iter(stage.losses(net, _frame_batch(anno), device="cpu")))
    assert net.calls[0]["search_pos_first"] is True and net.calls[0]["exits"] == tuple(range(5, 15))
    torch.testing.assert_close(item.loss.detach(), ref["s2_total_loss"], rtol=RTOL, atol=0)
    kls = adjacent_kl([o.detach() for o in outputs], 600)
    torch.testing.assert_close(torch.stack(kls), ref["s2_kl_pairs"], rtol=RTOL, atol=1e-7)
    status = ref["s2_status"]
    assert set(status) <= set(item.stats), sorted(set(status) - set(item.stats))
    for key, value in status.items():
        assert item.stats[key] == pytest.approx(value, rel=RTOL, abs=1e-7), key
    item.loss.backward()
    grads = torch.stack([leaf.grad.permute(1, 0, 2) for leaf in net.leaves])
    torch.testing.assert_close(grads, ref["s2_grad_logits"], rtol=0, atol=GRAD_ATOL)


def test_stage2_weights_come_from_config(ref):
    outputs = [_ours(ref["s2_logits"][e]) for e in range(11)]
    anno = ref["s2_search_anno_xywh"]
    base = next(iter(DistillStage(LossWeights(), range(5, 16), 15).losses(_StubNet(outputs), _frame_batch(anno), device="cpu")))
    heavier = LossWeights(kl=1.01)
    other = next(iter(DistillStage(heavier, range(5, 16), 15).losses(_StubNet(outputs), _frame_batch(anno), device="cpu")))
    expected = base.loss.item() + 1.0 * base.stats["Loss/KL_mean"]
    assert other.loss.item() == pytest.approx(expected, rel=1e-5)


def test_stage3_targets_and_loss(ref):
    targets = sequence_targets(ref["s3_search_anno_xywh_px"])
    assert torch.equal(targets.tokens.reshape(-1), ref["s3_ce_target"])
    assert torch.equal(targets.box_xyxy, ref["s3_siou_target_xyxy"])
    absent = ref["s3_case_names"].index("absent_gt_zero_box")
    assert torch.equal(targets.box_xyxy[absent], torch.zeros(4))
    logits = _ours(ref["s3_logits"]).requires_grad_(True)
    decoded = soft_argmax(logits)
    torch.testing.assert_close(decoded.detach(), ref["s3_decoded_xyxy"], rtol=0, atol=1e-6)
    siou, iou = siou_loss(decoded, targets.box_xyxy)
    _close_nan_aware(siou.detach(), ref["s3_siou_per_box"])
    _close_nan_aware(iou.detach(), ref["s3_iou_per_box"])
    torch.testing.assert_close(weighted_cross_entropy(logits, targets.tokens).detach(), ref["s3_ce"], rtol=RTOL, atol=0)
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full")
    weights = LossWeights.from_config(cfg)
    assert (weights.giou, weights.ce, weights.l1) == (2.0, 0.0, 0.0)
    total = weights.giou * siou.mean() + weights.l1 * (decoded - targets.box_xyxy).abs().mean()
    total = total + weights.ce * weighted_cross_entropy(logits, targets.tokens)
    torch.testing.assert_close(total.detach(), ref["s3_total_loss"], rtol=RTOL, atol=0)
    total.backward()
    torch.testing.assert_close(logits.grad.permute(1, 0, 2), ref["s3_grad_logits"], rtol=0, atol=GRAD_ATOL)


def test_cross_entropy_special_weight_is_a_weighted_mean():
    """Rows whose target is a special id count with weight 0.1 in the weighted mean (not in the fixture)."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 605, generator=g)
    tokens = torch.tensor([[10, 600, 20, 604], [598, 0, 603, 5]])
    nll = -torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    w = torch.where(tokens >= 600, 0.1, 1.0)
    expected = (w * nll).sum() / w.sum()
    torch.testing.assert_close(weighted_cross_entropy(logits, tokens), expected, rtol=1e-6, atol=0)
    unweighted = weighted_cross_entropy(logits, tokens, special_weight=1.0)
    torch.testing.assert_close(unweighted, nll.mean(), rtol=1e-6, atol=0)


def test_soft_argmax_backward_after_the_tracker_ran_in_inference_mode():
    """The vocabulary grid is cached; if the tracker created it under inference_mode, training still works."""
    from fartrack.models import vocab as vocab_module

    vocab_module._grid_cpu.cache_clear()
    with torch.inference_mode():
        vocab_module.decode_soft(torch.zeros(1, 4, 605))
    assert not vocab_module.coordinate_grid().is_inference()
    logits = torch.randn(2, 4, 605, requires_grad=True)
    decoded = soft_argmax(logits)
    decoded.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(decoded.detach(), vocab_module.decode_soft(logits.detach()), rtol=0, atol=0)
    vocab_module._grid_cpu.cache_clear()
