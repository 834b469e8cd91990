"""Params and MACs of the variants (paper Table 2), the thop cross-check, and profile_model.py end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from fartrack.config import load_config
from fartrack.evaluation.profile import complexity_report
from fartrack.models.build import build_network
from fartrack.models.complexity import count_macs, count_params, inference_token_count
from fartrack.models.encoder import FARTrackNet, NetConfig

from conftest import REPO_ROOT

PAPER_PARAMS_M = {15: 6.82, 10: 4.59, 6: 2.81}
PAPER_MACS_G = {15: 2.65, 10: 1.78, 6: 1.08}


@pytest.fixture(scope="module")
def sparse_net():
    return build_network(load_config("fartrack_sparse", "fartrack_sparse_224_full"))


@pytest.mark.parametrize("layers", sorted(PAPER_PARAMS_M))
def test_params_match_paper_table2(sparse_net, layers):
    params_m = count_params(sparse_net, layers) / 1e6
    assert abs(params_m - PAPER_PARAMS_M[layers]) / PAPER_PARAMS_M[layers] < 0.005


@pytest.mark.parametrize("layers", sorted(PAPER_MACS_G))
def test_mac_conventions(sparse_net, layers):
    report = complexity_report(sparse_net, layers, retain_tokens=37)
    macs = report["macs"]
    assert report["tokens"] == {"reference_dense": 445, "ours_inference": 397, "paper_reconstruction": 393}
    # the paper's numbers are reproduced by the 393-token, one-template-embedded reconstruction (MODEL.md §10)
    assert round(macs["paper_reconstruction_thop"] / 1e9, 2) == PAPER_MACS_G[layers]
    assert macs["ours_inference_thop"] < macs["reference_dense_thop"]
    assert macs["ours_inference_full"] > macs["ours_inference_thop"]


def test_reference_dense_count_matches_model_md(sparse_net):
    expected = {15: 3.028, 10: 2.040, 6: 1.250}  # MODEL.md §10, thop 0.1.1 on the reference
    for layers, giga in expected.items():
        count = count_macs(sparse_net, inference_token_count(sparse_net), {112: 5, 224: 1}, layers)
        assert round(count.thop / 1e9, 3) == giga


def test_analytic_thop_count_equals_thop_package():
    thop = pytest.importorskip("thop")
    net = FARTrackNet(NetConfig(sparse=False)).eval()

    class Wrapper(torch.nn.Module):
        def __init__(self, inner, depth):
            super().__init__()
            self.inner, self.depth = inner, depth

        def forward(self, templates, search):
            return self.inner(templates, search, depth=self.depth).logits

    templates, search = torch.zeros(1, 5, 3, 112, 112), torch.zeros(1, 3, 224, 224)
    for depth in (6, 15):
        macs, _ = thop.profile(Wrapper(net, depth), inputs=(templates, search), verbose=False)
        ours = count_macs(net, 445, {112: 5, 224: 1}, depth)
        # thop also counts the final LayerNorm over the 4 command tokens, which our thop rule leaves out
        assert macs - ours.thop == 4 * 4 * 192


def test_profile_model_cli_writes_json(tmp_path):
    out = tmp_path / "profile.json"
    cmd = [sys.executable, str(REPO_ROOT / "tracking" / "profile_model.py"), "--script", "fartrack_sparse",
           "--config", "fartrack_sparse_224_full", "--layers", "6", "--frames", "14", "--runs", "3",
           "--threads", "1", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["layers"] == 6 and report["threads"] == 1 and report["mode"] == "fast"
    assert report["backend"] == "onnxruntime"  # the default (auto) on a CPU with onnxruntime installed
    assert report["macs_executed"] < report["macs"]["reference_dense_thop"] + report["macs"]["ours_inference_full"]
    assert abs(report["params"] / 1e6 - 2.81) < 0.01
    assert report["latency_ms"]["median"] > 0 and report["tracker_fps"] > 0
    assert "params (thop rule): 2.817 M" in result.stdout


def test_profile_model_cli_bad_config_exits_nonzero():
    cmd = [sys.executable, str(REPO_ROOT / "tracking" / "profile_model.py"), "--config", "no_such_config"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no_such_config" in result.stderr and "Traceback" not in result.stderr


def test_profile_model_cli_truncated_checkpoint_names_the_file(tmp_path):
    broken = tmp_path / "FARTrackSparse_ep0015.pth.tar"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 64)  # a zip header and nothing else
    cmd = [sys.executable, str(REPO_ROOT / "tracking" / "profile_model.py"), "--checkpoint", str(broken),
           "--frames", "12", "--runs", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert str(broken) in result.stderr and "Traceback" not in result.stderr


def test_executed_macs_per_path(sparse_net):
    from fartrack.evaluation.profile import executed_macs

    masked = executed_macs(sparse_net, 6, "masked", 37)
    removed = executed_macs(sparse_net, 6, "removed", 37)
    fast = executed_macs(sparse_net, 6, "fast", 37)
    full_445 = count_macs(sparse_net, 445, {112: 1, 224: 1}, 6).full
    assert masked == full_445  # masks save nothing
    assert fast < removed < masked
    # the fast path's last layer keeps keys/values of all 397 tokens: more than 5 of 6 full layers
    five_layers = count_macs(sparse_net, 397, {112: 1, 224: 1}, 5).full
    assert five_layers < fast


def test_speed_bench_runs_every_path_in_turn_and_writes_json(tmp_path):
    """bench/speed.py on a short run: one row per path with the repeats it took, MACs and roofline."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "speed.json"
    cmd = [sys.executable, str(REPO_ROOT / "bench" / "speed.py"), "--models", "pico", "--threads", "1",
           "--paths", "fast,onnxruntime", "--frames", "12", "--warmup", "2", "--runs", "2", "--repeats", "2",
           "--width", "200", "--height", "150", "--json", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = {row["path"]: row for row in report["rows"]}
    assert set(rows) == {"fast", "onnxruntime"} and report["machine"]["repeats"] == 2
    for row in rows.values():
        assert len(row["e2e_ms"]["repeats"]) == 2 and len(row["model_ms"]["repeats"]) == 2
        assert row["e2e_fps"] == pytest.approx(1000 / row["e2e_ms"]["median"])
        assert row["macs_executed"] > 1e9 and row["roofline_ms"] > 0
    assert "| pico (6) | onnxruntime | 1 |" in result.stdout
