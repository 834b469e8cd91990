"""Kill a training process (SIGKILL) in the middle of an epoch, rerun the same command with ``--resume auto``:
it continues from the last checkpoint, no checkpoint is ever truncated, and with a fixed seed it reaches the
parameters of an uninterrupted run (drop-path and an LR drop are on, data-loader workers too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from test_train_cli import TRAIN_PY, cli_args, make_workspace, run_cli, run_folder, write_config

SETTINGS = {
    "TRAIN.EPOCH": 3,
    "TRAIN.DROP_PATH_RATE": 0.2,  # a random stream the resumed run must replay
    "TRAIN.LR_DROP_EPOCH": 2,  # the scheduler state must be restored too
    "TRAIN.PRINT_INTERVAL": 1,
    "TRAIN.NUM_WORKER": 1,  # a (spawned, persistent) worker process: its seeding must not matter
    "DATA.TRAIN.SAMPLE_PER_EPOCH": 32,  # 8 iterations per epoch
    "DATA.VAL.DATASETS_NAME": [],
    "DATA.VAL.DATASETS_RATIO": [],
}


def test_sigkill_mid_epoch_then_resume_auto_matches_an_uninterrupted_run(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    config = write_config(tmp_path / "tiny.yaml", "fartrack", ws, **SETTINGS)

    straight = run_cli(cli_args("fartrack", config, tmp_path / "straight", ws, "--seed", "7"))
    assert straight.returncode == 0, straight.stderr[-3000:]

    save_dir = tmp_path / "killed"
    args = cli_args("fartrack", config, save_dir, ws, "--seed", "7", "--resume", "auto")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(TRAIN_PY), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    seen = []
    try:
        deadline = time.time() + 240
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("[train: 2, 3 / 8]"):
                proc.send_signal(signal.SIGKILL)
                break
            assert time.time() < deadline, "training did not reach epoch 2"
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-5:])

    folder = run_folder(save_dir, "fartrack", config)
    assert sorted(p.name for p in folder.glob("*.pth.tar")) == ["FARTrack_ep0001.pth.tar"]  # killed inside epoch 2
    for path in folder.glob("*.pth.tar"):
        assert torch.load(path, weights_only=True)["epoch"] == 1  # complete, loadable file

    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from epoch 1" in resumed.stdout
    names = sorted(p.name for p in folder.glob("*.pth.tar"))
    assert names == ["FARTrack_ep0001.pth.tar", "FARTrack_ep0002.pth.tar", "FARTrack_ep0003.pth.tar"]
    a = torch.load(run_folder(tmp_path / "straight", "fartrack", config) / names[-1], weights_only=True)
    b = torch.load(folder / names[-1], weights_only=True)
    assert a["train"]["optimizer_steps"] == b["train"]["optimizer_steps"] == 24 and b["epoch"] == 3
    for key in a["net"]:
        assert torch.allclose(a["net"][key], b["net"][key], rtol=0, atol=1e-6), key
    assert b["scheduler"]["last_epoch"] == 3 and b["optimizer"]["param_groups"][0]["lr"] == a["optimizer"]["param_groups"][0]["lr"]
