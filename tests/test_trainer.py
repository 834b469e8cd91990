"""Trainer mechanics with minimal stand-ins for the stage and the loader: optimiser groups, schedules,
checkpoints, exact resume, gradient accumulation, multi-item batches, AMP, failure messages, logging."""

from __future__ import annotations

import argparse
import io
import math
import random

import numpy as np
import pytest
import torch

from fartrack.config import config_to_dict, load_config
from fartrack.models.build import build_network
from fartrack.train.checkpointing import (
    ResumeError,
    find_resume_checkpoint,
    get_rng_state,
    list_checkpoints,
    set_rng_state,
    should_save,
)
from fartrack.train.distributed import DistInfo, all_reduce_gradients, average_stats
from fartrack.train.launch import config_name_of, torchrun_command
from fartrack.train.logging_utils import StatTracker, TrainLogger, wandb_mode
from fartrack.train.optim import build_optimizer, build_scheduler, group_of, param_groups
from fartrack.train.trainer import TrainOptions, Trainer, param_checksum

TINY = {
    "MODEL.EMBED_DIM": 48,
    "MODEL.PRETRAIN_FILE": "",
    "MODEL.PRETRAIN_PTH": "",
    "DATA.TEMPLATE.SIZE": 32,
    "DATA.TEMPLATE.NUMBER": 2,
    "DATA.SEARCH.SIZE": 64,
    "TEST.TEMPLATE_SIZE": 32,
    "TEST.SEARCH_SIZE": 64,
    "DATA.VAL.DATASETS_NAME": [],
    "DATA.VAL.DATASETS_RATIO": [],
    "TRAIN.LR": 1e-3,
    "TRAIN.BACKBONE_MULTIPLIER": 1.0,
    "TRAIN.DROP_PATH_RATE": 0.0,
    "TRAIN.GRAD_CLIP_NORM": 0.0,
    "TRAIN.BATCH_SIZE": 4,
    "TRAIN.PRINT_INTERVAL": 2,
    "TRAIN.SAVE_EVERY_EPOCH": 1,
}


def tiny_cfg(**extra):
    overrides = dict(TINY)
    overrides.update({k.replace("__", "."): v for k, v in extra.items()})
    return load_config("fartrack", "fartrack_tiny_224_full", overrides=overrides)


def make_batch(cfg, size: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    t, ts, ss = cfg.DATA.TEMPLATE.NUMBER, cfg.DATA.TEMPLATE.SIZE, cfg.DATA.SEARCH.SIZE
    return {
        "template_images": torch.randn(size, t, 3, ts, ts, generator=g),
        "search_images": torch.randn(size, 3, ss, ss, generator=g),
        "search_anno": torch.rand(size, 4, generator=g) * 0.5 + 0.25,
        "targets": torch.randint(0, 600, (size, 4), generator=g),
        "seq_name": [f"seq{seed}_{i}" for i in range(size)],
    }


class Item:
    def __init__(self, loss, stats, last):
        self.loss, self.stats, self.last = loss, stats, last


class CEStage:
    """Stand-in stage: token cross-entropy of the network output, split into ``parts`` loss items."""

    name = "frame"
    data_mode = "frame"

    def __init__(self, parts: int = 1, nan_at=None):
        self.parts, self.nan_at, self.calls = parts, nan_at, 0

    def losses(self, net, batch, *, device):
        self.calls += 1
        n = batch["search_images"].shape[0]
        chunks = torch.arange(n).chunk(self.parts)
        for k, idx in enumerate(chunks):
            out = net(batch["template_images"][idx].to(device), batch["search_images"][idx].to(device))
            logits = out.logits.float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["targets"][idx].reshape(-1).to(device))
            loss = loss * (len(idx) / n)
            if self.nan_at is not None and self.calls == self.nan_at:
                loss = loss * float("nan")
            last = k == len(chunks) - 1
            yield Item(loss, {"Loss/total": loss.item() * self.parts} if last else {"Partial": 1.0}, last)


class FakeLoader:
    """Fixed list of batches with the loader attributes the trainer uses; can fail at (epoch, iteration)."""

    def __init__(self, batches, fail_at=None):
        self.batches, self.fail_at = batches, fail_at
        self.batch_size = batches[0]["search_images"].shape[0]
        self.dataset = self
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for i, batch in enumerate(self.batches, start=1):
            if self.fail_at == (self.epochs[-1] if self.epochs else None, i):
                raise RuntimeError("simulated crash")
            yield batch


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(cfg, tmp_path, stage=None, loader=None, resume=None, name="tiny", stream=None, before_fit=None):
    loader = loader or FakeLoader([make_batch(cfg, 4, s) for s in range(3)])
    opts = TrainOptions(script="fartrack", config_name=name, save_dir=tmp_path / "out", resume=resume, device="cpu")
    trainer = Trainer(
        cfg, opts, settings=None, dist_info=DistInfo(), stage=stage or CEStage(),
        loader_fn=lambda *a, **k: loader, stream=stream,
    )
    if before_fit is not None:
        before_fit(trainer)
    return trainer, trainer.fit()


# ---------------------------------------------------------------------------------------------- optimiser


def test_param_groups_follow_the_reference_rule():
    cfg = load_config("fartrack", "fartrack_tiny_224_full", overrides={"MODEL.PRETRAIN_FILE": ""})
    net = build_network(cfg)
    groups = param_groups(net, cfg)
    assert [g["lr"] for g in groups] == pytest.approx([4e-4, 4e-5, 4e-4])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())  # every parameter exactly once
    names = {id(p): n for n, p in net.named_parameters()}
    group0 = {names[id(p)] for p in groups[0]["params"]}
    group2 = {names[id(p)] for p in groups[2]["params"]}
    assert group0 == {"identity"}
    assert "backbone.output_bias" in group2 and "backbone.word_embeddings.weight" in group2
    assert "backbone.extension.0.attn.qkv.weight" in group2 and "backbone.blocks.0.attn.qkv.weight" not in group2
    assert group_of("backbone.pos_embed_x") == 1 and group_of("backbone.norm.weight") == 1
    distill = load_config("fartrack_distill", "fartrack_distill_224_full")
    assert [g["lr"] for g in param_groups(net, distill)] == pytest.approx([4e-5, 4e-5, 4e-5])
    opt = build_optimizer(net, cfg)
    assert all(g["weight_decay"] == pytest.approx(1e-4) for g in opt.param_groups)


def lrs_over(cfg, epochs):
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.TRAIN.LR)
    sched = build_scheduler(opt, cfg)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedules_step_multistep_cosine():
    step = tiny_cfg(**{"TRAIN.LR_DROP_EPOCH": 3, "TRAIN.SCHEDULER.DECAY_RATE": 0.5})
    assert lrs_over(step, 7) == pytest.approx([1e-3] * 3 + [5e-4] * 3 + [2.5e-4])
    mstep = tiny_cfg(**{"TRAIN.SCHEDULER.TYPE": "Mstep", "TRAIN.SCHEDULER.MILESTONES": [2, 5]})
    assert lrs_over(mstep, 6) == pytest.approx([1e-3] * 2 + [1e-4] * 3 + [1e-5])
    cosine = tiny_cfg(**{"TRAIN.SCHEDULER.TYPE": "cosine", "TRAIN.EPOCH": 4})
    lrs = lrs_over(cosine, 5)
    assert lrs[0] == pytest.approx(1e-3) and lrs[2] == pytest.approx(5e-4) and lrs[4] == pytest.approx(0.0, abs=1e-12)


def test_save_epochs_reproduce_the_reference_rule():
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full")
    assert [e for e in range(1, 21) if should_save(e, cfg)] == [5, 10, 15, 16, 17, 18, 19, 20]
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 7, "TRAIN.SAVE_EVERY_EPOCH": 3, "TRAIN.SAVE_LAST_EPOCHS": 0})
    assert [e for e in range(1, 8) if should_save(e, cfg)] == [3, 6, 7]


# ---------------------------------------------------------------------------------------------- checkpoints


def test_find_resume_checkpoint(tmp_path):
    folder = tmp_path / "run"
    assert find_resume_checkpoint(folder, "FARTrack", None) is None
    assert find_resume_checkpoint(folder, "FARTrack", "auto") is None
    folder.mkdir()
    for name in ("FARTrack_ep0009.pth.tar", "FARTrack_ep0010.pth.tar", ".FARTrack_ep0011.pth.tar.x1.tmp",
                 "FARTrackDistill_ep0020.pth.tar"):
        (folder / name).write_bytes(b"x")
    assert [e for e, _ in list_checkpoints(folder, "FARTrack")] == [9, 10]
    assert find_resume_checkpoint(folder, "FARTrack", "auto").name == "FARTrack_ep0010.pth.tar"
    with pytest.raises(ResumeError, match="--resume auto"):
        find_resume_checkpoint(folder, "FARTrack", None)
    with pytest.raises(ResumeError, match="no such checkpoint"):
        find_resume_checkpoint(folder, "FARTrack", str(tmp_path / "missing.pth.tar"))


def test_rng_state_roundtrip():
    state = get_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(state)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_checkpoint_contents_and_reload(tmp_path):
    from fartrack.tracker.build import build_tracker

    cfg = tiny_cfg(**{"TRAIN.EPOCH": 2, "TRAIN.SCHEDULER.TYPE": "Mstep", "TRAIN.SCHEDULER.MILESTONES": [1]})
    trainer, result = run(cfg, tmp_path)
    assert [p.name for p in result.checkpoints] == ["FARTrack_ep0001.pth.tar", "FARTrack_ep0002.pth.tar"]
    assert result.checkpoints[0].parent == tmp_path / "out" / "checkpoints" / "train" / "fartrack" / "tiny"
    ckpt = torch.load(result.checkpoints[-1], weights_only=True)  # plain data only
    assert ckpt["epoch"] == 2 and ckpt["net_type"] == "FARTrack"
    assert set(ckpt["net"]) == set(build_network(cfg).state_dict())
    assert ckpt["config"] == config_to_dict(cfg)
    assert len(ckpt["optimizer"]["param_groups"]) == 3 and ckpt["optimizer"]["state"]
    assert ckpt["scheduler"]["last_epoch"] == 2 and ckpt["scheduler"]["milestones"] == {1: 1}
    assert ckpt["scaler"] == {} and {"python", "numpy", "torch"} <= set(ckpt["rng"])
    assert ckpt["train"]["optimizer_steps"] == 6 and ckpt["train"]["world_size"] == 1
    for name, value in trainer.net.state_dict().items():
        assert torch.equal(ckpt["net"][name], value), name
    tracker = build_tracker(cfg, result.checkpoints[-1], device="cpu")
    frame = np.zeros((64, 80, 3), dtype=np.uint8)
    tracker.initialize(frame, [20, 20, 16, 12])
    assert len(tracker.track(frame)) == 4
    assert (tmp_path / "out" / "logs" / "fartrack-tiny.log").is_file()
    assert (result.checkpoints[0].parent / "config.yaml").is_file()


def test_existing_run_needs_resume_flag(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1})
    run(cfg, tmp_path)
    with pytest.raises(ResumeError, match="--resume auto"):
        run(cfg, tmp_path)
    _, again = run(cfg, tmp_path, resume="auto")  # already finished: nothing left to do
    assert again.optimizer_steps == 0 and again.last_epoch == 1


# ---------------------------------------------------------------------------------------------- loop


def test_loss_goes_down_on_a_fixed_batch(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 5, "TRAIN.SAVE_EVERY_EPOCH": 5, "TRAIN.SAVE_LAST_EPOCHS": 0})
    batch = make_batch(cfg, 4, 0)
    _, result = run(cfg, tmp_path, loader=FakeLoader([batch] * 4))
    first, last = result.epoch_stats[1]["Loss/total"], result.epoch_stats[5]["Loss/total"]
    assert last < 0.5 * first, (first, last)
    assert result.optimizer_steps == 20 and [p.name for p in result.checkpoints] == ["FARTrack_ep0005.pth.tar"]


def test_resume_after_crash_reaches_the_uninterrupted_parameters(tmp_path):
    # drop-path on (random stream) and an LR drop after epoch 2: both the RNG and the scheduler must be right
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 3, "TRAIN.DROP_PATH_RATE": 0.2, "TRAIN.LR_DROP_EPOCH": 2})
    batches = [make_batch(cfg, 4, s) for s in range(3)]
    _, straight = run(cfg, tmp_path / "a", loader=FakeLoader(batches))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg, tmp_path / "b", loader=FakeLoader(batches, fail_at=(3, 2)))
    saved = list_checkpoints(tmp_path / "b" / "out" / "checkpoints" / "train" / "fartrack" / "tiny", "FARTrack")
    assert [e for e, _ in saved] == [1, 2]
    trainer, resumed = run(cfg, tmp_path / "b", loader=FakeLoader(batches), resume="auto")
    assert trainer.start_epoch == 2 and resumed.optimizer_steps == 3
    assert resumed.param_checksum == straight.param_checksum
    a = torch.load(straight.checkpoints[-1], weights_only=True)
    b = torch.load(resumed.checkpoints[-1], weights_only=True)
    for key in a["net"]:
        assert torch.equal(a["net"][key], b["net"][key]), key


def test_resume_from_explicit_path_and_wrong_class(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1})
    _, first = run(cfg, tmp_path)
    distill = tiny_cfg(**{"TRAIN.EPOCH": 2, "MODEL.EXITS": [14, 15]})
    with pytest.raises(ResumeError, match="FARTrack network, but this config trains FARTrackDistill"):
        run(distill, tmp_path / "other", resume=str(first.checkpoints[0]))
    longer = tiny_cfg(**{"TRAIN.EPOCH": 2})
    stream = io.StringIO()
    trainer, result = run(longer, tmp_path / "third", resume=str(first.checkpoints[0]), stream=stream)
    assert trainer.start_epoch == 1 and result.last_epoch == 2
    assert "resumed from epoch 1" in stream.getvalue()
    assert "warning: config differs from the checkpoint's: TRAIN.EPOCH: 1 -> 2" in stream.getvalue()


def _stepped_grads(cfg, tmp_path, stage, batches):
    """The gradients the optimiser sees at its (only) step."""
    seen = {}

    def hook(trainer):
        step = trainer.optimizer.step

        def recording_step(*args, **kwargs):
            for name, p in trainer.net.named_parameters():
                seen[name] = p.grad.detach().clone()
            return step(*args, **kwargs)

        trainer.optimizer.step = recording_step

    trainer, result = run(cfg, tmp_path, stage=stage, loader=FakeLoader(batches), before_fit=hook)
    assert result.optimizer_steps == 1
    return seen


@pytest.mark.filterwarnings(r"ignore:Seems like `optimizer.step\(\)` has been overridden")
def test_accumulation_and_multi_item_batches_match_one_big_batch(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1})
    full = make_batch(cfg, 4, 7)
    halves = [{k: v[:2] for k, v in full.items()}, {k: v[2:] for k, v in full.items()}]
    reference = _stepped_grads(cfg, tmp_path / "one", CEStage(), [full])
    accumulated = _stepped_grads(tiny_cfg(**{"TRAIN.EPOCH": 1, "TRAIN.ACCUM_STEPS": 2}), tmp_path / "acc", CEStage(), halves)
    multi_item = _stepped_grads(cfg, tmp_path / "items", CEStage(parts=2), [full])
    assert reference["backbone.word_embeddings.weight"].abs().sum() > 0
    for name, value in reference.items():
        assert torch.allclose(accumulated[name], value, rtol=1e-4, atol=1e-7), name
        assert torch.allclose(multi_item[name], value, rtol=1e-4, atol=1e-7), name


def test_multi_item_stats_are_averaged_per_key(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1})
    trainer, result = run(cfg, tmp_path, stage=CEStage(parts=2))
    stats = result.epoch_stats[1]
    assert stats["Partial"] == 1.0 and math.isfinite(stats["Loss/total"]) and stats["grad_norm"] > 0


def test_bf16_autocast_on_cpu(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1, "TRAIN.AMP": True})
    trainer, result = run(cfg, tmp_path)
    assert trainer.amp_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    assert math.isfinite(result.epoch_stats[1]["Loss/total"])
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        run(tiny_cfg(**{"TRAIN.AMP": True, "TRAIN.AMP_DTYPE": "float16"}), tmp_path / "f16")


def test_gradient_clipping_bounds_the_update(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1, "TRAIN.GRAD_CLIP_NORM": 1e-3})
    trainer, result = run(cfg, tmp_path)
    assert result.epoch_stats[1]["grad_norm"] > 1e-3  # reported norm is before clipping


def test_non_finite_loss_stops_with_its_position(tmp_path):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1})
    with pytest.raises(FloatingPointError, match=r"epoch 1, iteration 2 \(sequences \['seq1_0'"):
        run(cfg, tmp_path, stage=CEStage(nan_at=2))


def test_log_lines_and_rank0_only_logger(tmp_path, capsys):
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1})
    run(cfg, tmp_path)
    text = (tmp_path / "out" / "logs" / "fartrack-tiny.log").read_text()
    assert "[train: 1, 2 / 3]" in text and "[train: 1, 3 / 3]" in text and "LearningRate/group2" in text
    quiet = TrainLogger(enabled=False, log_file=tmp_path / "never.log")
    quiet.info("hello")
    assert not (tmp_path / "never.log").exists()


def test_tensorboard_scalars_are_written(tmp_path):
    pytest.importorskip("tensorboard")
    cfg = tiny_cfg(**{"TRAIN.EPOCH": 1, "TRAIN.TENSORBOARD": True})
    run(cfg, tmp_path)
    events = list((tmp_path / "out" / "tensorboard" / "train" / "fartrack" / "tiny").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_use_wandb_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    opts = TrainOptions(script="fartrack", config_name="w", save_dir=tmp_path, use_wandb=True, device="cpu")
    with pytest.raises(RuntimeError, match="pip install wandb"):
        Trainer(tiny_cfg(), opts, settings=None, dist_info=DistInfo(), stage=CEStage(), loader_fn=lambda *a, **k: None)


def test_stat_tracker_and_single_process_collectives():
    tracker = StatTracker()
    tracker.update({"a": 1.0}, n=1)
    tracker.update({"a": 4.0, "b": 2.0}, n=3)
    assert tracker.averages() == {"a": pytest.approx(3.25), "b": 2.0}
    assert average_stats({"x": 1.5}) == {"x": 1.5}
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    all_reduce_gradients([p])  # no process group: unchanged
    assert torch.equal(p.grad, torch.full((3,), 2.0))


def test_wandb_is_offline_unless_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert wandb_mode({}) == "offline"
    assert wandb_mode({"WANDB_API_KEY": "k"}) == "online"
    assert wandb_mode({"WANDB_MODE": "disabled"}) == "disabled"


def test_torchrun_commands():
    base = dict(nproc_per_node=2, nnodes=1, node_rank=0, master_addr="127.0.0.1", master_port=29500)
    multiple = torchrun_command(argparse.Namespace(mode="multiple", **base), ["--script", "fartrack"], "train.py")
    assert multiple[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in multiple
    assert multiple[-3:] == ["train.py", "--script", "fartrack"]
    node = dict(base, nnodes=2, node_rank=1, master_addr="10.0.0.1", master_port=1234)
    multi = torchrun_command(argparse.Namespace(mode="multi_node", **node), [], "train.py")
    joined = " ".join(multi)
    assert "--nnodes 2 --node_rank 1 --master_addr 10.0.0.1 --master_port 1234" in joined
    assert "--standalone" not in multi
    assert config_name_of("experiments/x/my_cfg.yaml") == "my_cfg" and config_name_of("name") == "name"


def test_param_checksum_sees_any_change():
    net = build_network(tiny_cfg())
    before = param_checksum(net)
    with torch.no_grad():
        net.identity[0, 0, 0] += 1e-6
    assert param_checksum(net) != before
