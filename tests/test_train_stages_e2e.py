"""The three stages end to end on tiny generated data in the GOT-10k and LaSOT layouts (plus a COCO json in
stage 1), chained as a user would chain them (stage 2 starts from the stage-1 checkpoint through
``MODEL.PRETRAIN_PTH``, stage 3 from stage 2): one epoch through the real loader and stage, then an overfit
check on a fixed batch from that loader (the loss must fall below a threshold), and the checkpoint must load
back into the model (strict) and into the tracker."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fartrack.config import load_config, load_train_settings
from fartrack.data.loader import build_train_loader
from fartrack.models.build import build_network
from fartrack.models.checkpoint import load_model_weights
from fartrack.tracker.build import build_tracker
from fartrack.train.distributed import DistInfo
from fartrack.train.trainer import TrainOptions, Trainer
from test_train_cli import NET_TYPE, make_workspace, write_config
from train_layouts import frames_and_boxes

#: script -> (epochs on the fixed batch, iterations per epoch, bound on mean(last 3 epochs) / first epoch loss)
PLAN = {
    "fartrack": (6, 4, 0.5),
    "fartrack_distill": (6, 4, 0.5),
    "fartrack_sparse": (10, 3, 0.75),
}
OVERFIT = {"TRAIN.DROP_PATH_RATE": 0.0, "TRAIN.GRAD_CLIP_NORM": 0.0, "DATA.VAL.DATASETS_NAME": [],
           "DATA.VAL.DATASETS_RATIO": []}


class FixedBatch:
    """A loader that yields the same batch ``n`` times per epoch."""

    def __init__(self, batch, n):
        self.batch, self.n = batch, n
        self.batch_size = len(batch) if isinstance(batch, list) else batch["search_images"].shape[0]
        self.dataset = self

    def set_epoch(self, epoch):
        pass

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter([self.batch] * self.n)


@pytest.fixture(scope="module")
def chain(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("stages")
    ws = make_workspace(root / "ws")
    return {"root": root, "ws": ws, "save_dir": root / "out", "settings": load_train_settings(ws["settings_root"]),
            "ckpt": {}, "losses": {}}


def _cfg(chain, script, name, **overrides):
    path = write_config(chain["root"] / f"{name}.yaml", script, chain["ws"], **overrides)
    return load_config(script, path), name


def _train(chain, cfg, script, name, loader_fn=None):
    opts = TrainOptions(script=script, config_name=name, save_dir=chain["save_dir"], device="cpu")
    trainer = Trainer(cfg, opts, chain["settings"], DistInfo(), loader_fn=loader_fn)
    return trainer, trainer.fit()


def _previous(chain, script):
    prev = {"fartrack_distill": "fartrack", "fartrack_sparse": "fartrack_distill"}.get(script)
    if prev is None:
        return {"MODEL.PRETRAIN_FILE": ""}
    if prev not in chain["ckpt"]:
        pytest.skip(f"needs the {prev} checkpoint of the previous test")
    rel = chain["ckpt"][prev].relative_to(chain["save_dir"])
    return {"MODEL.PRETRAIN_PTH": str(rel)}  # relative to --save_dir, as in the shipped YAMLs


def _check_checkpoint(cfg, path, net_type):
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["net_type"] == net_type
    net = build_network(cfg)
    load_model_weights(net, path)  # strict key check
    for key, value in net.state_dict().items():
        saved = ckpt["net"][key]
        if key == "backbone.word_embeddings.weight" and cfg.MODEL.SPARSE.ENABLED:
            # the sparse model applies its max-norm to the 4 command rows on load (MODEL.SPARSE.MAX_NORM)
            rows = net.command_ids
            assert torch.all(value[rows].norm(dim=1) <= cfg.MODEL.SPARSE.MAX_NORM + 1e-6)
            keep = torch.ones(len(value), dtype=torch.bool)
            keep[rows] = False
            value, saved = value[keep], saved[keep]
        assert torch.equal(value, saved), key
    frames, boxes = frames_and_boxes(6, seed=5)
    tracker = build_tracker(cfg, path, device="cpu")
    tracker.initialize(frames[0], boxes[0].tolist())
    for frame in frames[1:]:
        box = tracker.track(frame)
        assert len(box) == 4 and all(math.isfinite(v) for v in box)


@pytest.mark.parametrize("script", ["fartrack", "fartrack_distill", "fartrack_sparse"])
def test_stage_trains_overfits_and_reloads(chain, script):
    start = _previous(chain, script)
    epochs, iters, ratio = PLAN[script]

    # 1) one epoch through the real loader and the real stage
    cfg, name = _cfg(chain, script, f"{script}_real", **start, **{"TRAIN.EPOCH": 1})
    trainer, result = _train(chain, cfg, script, name)
    assert type(trainer.stage).__name__ == {"fartrack": "FrameStage", "fartrack_distill": "DistillStage",
                                            "fartrack_sparse": "SparseStage"}[script]
    assert result.optimizer_steps == len(trainer.loader) and result.checkpoints
    if script == "fartrack_distill":
        assert trainer.pretrain_report["source"] == "previous_stage"

    # 2) overfit a fixed batch drawn from the real loader
    lr = {"TRAIN.LR": 1e-3} if script == "fartrack_sparse" else {}
    cfg, name = _cfg(chain, script, f"{script}_fit", **start, **OVERFIT, **lr,
                     **{"TRAIN.EPOCH": epochs, "TRAIN.SAVE_EVERY_EPOCH": epochs})
    loader = build_train_loader(cfg, chain["settings"], stage=trainer.stage.data_mode, seed=3)
    batch = next(iter(loader))
    trainer, result = _train(chain, cfg, script, name, loader_fn=lambda *a, **k: FixedBatch(batch, iters))
    # the stage-3 rollout changes with the weights, so its loss is noisy: compare the mean of the last 3 epochs
    first = result.epoch_stats[1]["Loss/total"]
    last = float(np.mean([result.epoch_stats[e]["Loss/total"] for e in range(epochs - 2, epochs + 1)]))
    chain["losses"][script] = (first, last)
    print(f"{script}: overfit Loss/total {first:.4f} -> {last:.4f} ({epochs} epochs x {iters} steps)", [round(result.epoch_stats[e]["Loss/total"], 3) for e in result.epoch_stats])
    assert last < ratio * first, (first, last)
    path = result.checkpoints[-1]
    assert path.name == f"{NET_TYPE[script]}_ep{epochs:04d}.pth.tar"
    chain["ckpt"][script] = path
    _check_checkpoint(cfg, path, NET_TYPE[script])
