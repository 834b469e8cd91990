"""Distributed training on the CPU (gloo) through tracking/train.py and torchrun: 2 processes on one machine,
and two torchrun launches that join as two "machines" on 127.0.0.1. Both must equal a single process with the
same global batch (to float tolerance), with identical parameters on every rank and files from rank 0 only."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train_cli import TRAIN_PY, cli_args, last_line, make_workspace, run_cli, run_folder, write_config

CHECKSUM = re.compile(r"\[rank (\d+)/(\d+)\] finished epoch (\d+): (\d+) optimiser steps, parameter checksum (\w+)")

#: Same data for every run: DistributedSampler(shuffle=False) gives rank r the indices r, r+2, ... so a 2-rank
#: run with batch 2 per rank sees exactly the batches of one process with batch 4. Drop-path off: its random
#: masks are drawn per rank and could not match the single process.
COMMON = {"TRAIN.DROP_PATH_RATE": 0.0, "TRAIN.EPOCH": 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_lines(stderr: str):
    return {int(m.group(1)): m.groups() for m in CHECKSUM.finditer(stderr)}


def net_of(save_dir: Path, config: Path, epoch: int = 2):
    path = run_folder(save_dir, "fartrack", config) / f"FARTrack_ep{epoch:04d}.pth.tar"
    return torch.load(path, weights_only=True)["net"]


def max_abs_diff(a, b) -> float:
    assert set(a) == set(b)
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    ws = make_workspace(root / "ws")
    config = write_config(root / "tiny.yaml", "fartrack", ws, **COMMON)
    single = run_cli(cli_args("fartrack", config, root / "single", ws))
    assert single.returncode == 0, single.stderr[-3000:]
    return {"root": root, "ws": ws, "config": config, "single": root / "single"}


def test_two_cpu_processes_equal_one_process_with_the_same_global_batch(setup):
    root, ws, config = setup["root"], setup["ws"], setup["config"]
    out = root / "multi"
    proc = run_cli(cli_args("fartrack", config, out, ws, "--mode", "multiple", "--nproc_per_node", "2",
                            "--set", "TRAIN.BATCH_SIZE=2"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = rank_lines(proc.stderr)
    assert sorted(ranks) == [0, 1]
    # both ranks stepped (4 iterations x 2 epochs) and hold bit-identical parameters
    assert ranks[0][3] == ranks[1][3] == "8"
    assert ranks[0][4] == ranks[1][4]
    # only rank 0 wrote: the expected files, and every log line once
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "checkpoints/train/fartrack/tiny/FARTrack_ep0001.pth.tar",
        "checkpoints/train/fartrack/tiny/FARTrack_ep0002.pth.tar",
        "checkpoints/train/fartrack/tiny/config.yaml",
        "logs/fartrack-tiny.log",
    ]
    log = (out / "logs" / "fartrack-tiny.log").read_text()
    assert log.count("[train: 1, 2 / 4]") == 1 and "2 process(es) on cpu (gloo), batch 2 per process" in log
    diff = max_abs_diff(net_of(out, config), net_of(setup["single"], config))
    print(f"max |2 processes - 1 process| after 8 steps: {diff:.3g}")
    assert diff < 1e-5


def test_two_torchrun_launches_train_together_as_two_nodes(setup):
    root, ws, config = setup["root"], setup["ws"], setup["config"]
    port = free_port()
    procs = []
    for node in (0, 1):
        args = cli_args("fartrack", config, root / f"node{node}", ws, "--mode", "multi_node", "--nnodes", "2",
                        "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
                        "--nproc_per_node", "1", "--set", "TRAIN.BATCH_SIZE=2")
        env = dict(__import__("os").environ, OMP_NUM_THREADS="1")
        for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            env.pop(key, None)
        procs.append(subprocess.Popen([sys.executable, str(TRAIN_PY), *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=240))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-4000:]
    ranks = {**rank_lines(outputs[0][1]), **rank_lines(outputs[1][1])}
    assert sorted(ranks) == [0, 1] and ranks[0][1] == ranks[1][1] == "2"
    assert ranks[0][4] == ranks[1][4]
    # global rank 0 lives on node 0: only that node wrote checkpoints and logs
    assert (run_folder(root / "node0", "fartrack", config) / "FARTrack_ep0002.pth.tar").is_file()
    assert not (root / "node1").exists()
    assert max_abs_diff(net_of(root / "node0", config), net_of(setup["single"], config)) < 1e-5


def test_a_failing_run_fails_under_torchrun_with_the_cause_last(setup, tmp_path):
    ws = make_workspace(tmp_path / "ws", frames=30)
    for seq in ("GOT-10k_Train_000001", "GOT-10k_Train_000002"):
        for frame in (ws["data"] / "got10k" / "train" / seq).glob("*.jpg"):
            frame.write_bytes(b"not a jpeg")
    config = write_config(tmp_path / "bad.yaml", "fartrack", ws, **{
        "DATA.TRAIN.DATASETS_NAME": ["GOT10K_vottrain"], "DATA.TRAIN.DATASETS_RATIO": [1],
        "DATA.VAL.DATASETS_NAME": [], "DATA.VAL.DATASETS_RATIO": [], "DATA.SAMPLE_RETRY_LIMIT": 3})
    proc = run_cli(cli_args("fartrack", config, tmp_path / "out", ws, "--mode", "multiple", "--nproc_per_node", "2",
                            "--set", "TRAIN.BATCH_SIZE=2"))
    assert proc.returncode != 0
    line = last_line(proc.stderr)
    assert line.startswith("train.py: error: rank ") and "consecutive unusable samples" in line and ".jpg" in line, line
    assert "torchrun exit status" in line
