"""Metrics per protocol: cross-checked against the ``got10k`` PyPI package (0.1.3) and hand-computed cases.

``got10k`` is a test-only dependency: it is imported here and nowhere in ``fartrack``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fartrack.evaluation import metrics as M
from fartrack.evaluation.results import read_boxes

from bench_layouts import make_got10k

got10k_experiments = pytest.importorskip("got10k.experiments", reason="got10k (+six) not installed")


def _noisy_predictions(gt: np.ndarray, rng: np.random.Generator, width: float, height: float) -> np.ndarray:
    """Jittered GT plus a few failures and boxes crossing the image border (exercises clipping)."""
    pred = gt + rng.normal(0.0, 3.0, size=gt.shape)
    pred[:, 2:] = np.abs(pred[:, 2:]) + 1.0
    n = len(gt)
    pred[n // 3] = [width - 5.0, height - 4.0, 30.0, 25.0]           # crosses right/bottom border
    pred[n // 2] = [-12.0, -7.0, gt[n // 2, 2] + 12.0, gt[n // 2, 3] + 7.0]  # crosses left/top border
    pred[-1] = [1.0, 1.0, 3.0, 3.0]                                  # a failure
    return pred


# ----------------------------------------------------------------------------------------------- GOT-10k


def test_got10k_matches_package_experiment(tmp_path):
    """AO and SR0.5 equal ``ExperimentGOT10k.report`` to 1e-9 on a GOT-10k-layout val set (absent frames, border boxes)."""
    root = tmp_path / "got10k"
    made = make_got10k(root, "val", n_seq=3, n_frames=[9, 11, 14],
                       absent={"GOT-10k_Val_000002": [3, 4], "GOT-10k_Val_000003": [0, 7]})
    rng = np.random.default_rng(0)
    result_root = tmp_path / "results"
    ours = []
    for name, gt in made.items():
        pred = _noisy_predictions(gt, rng, 64.0, 48.0)
        record = result_root / "GOT-10k" / "mine" / name / f"{name}_001.txt"
        record.parent.mkdir(parents=True)
        np.savetxt(record, pred, fmt="%.3f", delimiter=",")
        np.savetxt(record.parent / f"{name}_time.txt", rng.uniform(0.01, 0.02, size=(len(gt), 1)), fmt="%.8f")
        seq_dir = root / "val" / name
        ours.append({"name": name, "pred": read_boxes(record, len(gt)),
                     "gt": np.loadtxt(seq_dir / "groundtruth.txt", delimiter=","),
                     "cover": np.loadtxt(seq_dir / "cover.label"), "image_size": (64, 48)})

    exp = got10k_experiments.ExperimentGOT10k(str(root), subset="val", result_dir=str(result_root),
                                              report_dir=str(tmp_path / "reports"))
    perf = exp.report(["mine"])["mine"]
    mine = M.got10k_official(ours)

    assert abs(mine["AO"] - perf["overall"]["ao"]) < 1e-9
    assert abs(mine["SR50"] - perf["overall"]["sr"]) < 1e-9
    np.testing.assert_allclose(mine["success_curve"], perf["overall"]["succ_curve"], atol=1e-12)
    for name, seq in perf["seq_wise"].items():
        assert abs(mine["per_sequence"][name]["AO"] - seq["ao"]) < 1e-9
        assert mine["per_sequence"][name]["num_frames"] <= seq["length"]
    # 3 absent frames among frames 2..N are dropped (frame 1 of sequence 3 is excluded anyway).
    assert mine["num_frames"] == (9 - 1) + (11 - 1 - 2) + (14 - 1 - 1)

    # SR0.75 (not in the package): same pooled IoUs, threshold 0.75, computed with the package's rect_iou.
    from got10k.utils.metrics import rect_iou
    pooled = []
    for seq in ours:
        keep = seq["cover"][1:] > 0
        pooled.append(rect_iou(seq["pred"][1:].copy(), seq["gt"][1:].copy(), bound=(64, 48))[keep])
    assert abs(mine["SR75"] - float(np.mean(np.concatenate(pooled) > 0.75))) < 1e-12


def test_got10k_clipping_and_frame_rules_change_the_score():
    """Clipping to the image, skipping frame 1 and dropping cover-0 frames each matter (hand-computed)."""
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 10.0, 10.0]])
    pred = np.array([[50.0, 50.0, 5.0, 5.0],      # frame 1: ignored even though it is a failure
                     [-10.0, 0.0, 20.0, 10.0],    # clipped to x=0, w=20 -> w=min(20, W-0)=20
                     [10.0, 10.0, 10.0, 10.0]])   # absent (cover 0): dropped
    out = M.got10k_official([{"name": "s", "pred": pred, "gt": gt, "image_size": (15, 15),
                              "cover": np.array([8, 8, 0])}])
    # frame 2 after clipping: pred (0,0,15,10) (w clipped to W - x = 15), gt (0,0,10,10): IoU 100/150.
    assert out["num_frames"] == 1
    assert out["AO"] == pytest.approx(100.0 / 150.0, abs=1e-12)
    assert out["SR50"] == 1.0 and out["SR75"] == 0.0
    # Without clipping the same frame would be IoU 0 (pred spans -10..10 vs 0..10 -> 100/200 = 0.5).
    assert M.iou_continuous(pred[1:2], gt[1:2])[0] == pytest.approx(0.5)


def test_got10k_speed_is_mean_of_per_frame_fps():
    assert M.got10k_speed([np.array([0.5, 0.25]), np.array([0.0, 0.1])]) == pytest.approx((2 + 4 + 10) / 3)
    assert M.got10k_speed([]) == -1.0


# ------------------------------------------------------------------------------------- OTB / pytracking


class _ListDataset:
    """The two things ``ExperimentOTB.report`` uses of its dataset: ``seq_names`` and iteration."""

    def __init__(self, annos: dict):
        self.seq_names = list(annos)
        self._annos = list(annos.values())

    def __len__(self):
        return len(self._annos)

    def __iter__(self):
        return iter([([], a) for a in self._annos])


def _package_otb(cls, tmp_path, annos: dict, preds: dict) -> dict:
    """Run the package's ``report`` (its own reading, IoU, curves and averaging) on results in its layout."""
    exp = cls.__new__(cls)  # skip __init__: it wants the full 100-sequence OTB folder (or a download)
    exp.dataset = _ListDataset(annos)
    exp.result_dir = str(tmp_path / "results")
    exp.report_dir = str(tmp_path / "reports")
    exp.nbins_iou, exp.nbins_ce = 21, 51
    for name, pred in preds.items():
        path = tmp_path / "results" / "mine" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(path, pred, fmt="%.3f", delimiter=",")
    return exp.report(["mine"])["mine"]


def _random_sequences(rng, n_seq=4, n_frames=30):
    annos, preds = {}, {}
    for k in range(n_seq):
        xy = rng.uniform(5, 200, size=(n_frames, 2))
        wh = rng.uniform(10, 80, size=(n_frames, 2))
        gt = np.round(np.concatenate([xy, wh], axis=1))
        pred = gt + rng.normal(0, 6.0 * (k + 1), size=gt.shape)
        pred[:, 2:] = np.abs(pred[:, 2:]) + 2.0
        pred[:: 7] = [300.0, 300.0, 20.0, 20.0]  # failures
        annos[f"seq{k}"], preds[f"seq{k}"] = gt, np.round(pred, 3)
    return annos, preds


def test_otb_protocol_matches_package_where_definitions_coincide(tmp_path):
    """All GT valid, no zero-size predictions: AUC, OP50 and P@20 equal ``ExperimentOTB`` to 1e-9.

    They coincide because both set frame 1 to GT, use 21 thresholds with ``>`` and centre thresholds
    0..50 px with ``<=``, average per-sequence curves, and the pixel-inclusive IoU equals the continuous IoU.
    """
    annos, preds = _random_sequences(np.random.default_rng(1))
    perf = _package_otb(got10k_experiments.ExperimentOTB, tmp_path, annos, preds)["overall"]
    mine = M.otb_pytracking([{"name": n, "pred": preds[n], "gt": annos[n]} for n in annos], "otb")
    assert abs(mine["AUC"] - perf["success_score"]) < 1e-9
    assert abs(mine["P"] - perf["precision_score"]) < 1e-9
    assert abs(mine["OP50"] - perf["success_rate"]) < 1e-9
    np.testing.assert_allclose(mine["success_curve"], perf["success_curve"], atol=1e-12)
    np.testing.assert_allclose(mine["precision_curve"], perf["precision_curve"], atol=1e-12)
    assert 0.2 < mine["AUC"] < 0.9  # a non-trivial score, so the equality above means something


def test_uav_nan_frames_differ_from_package_by_design(tmp_path):
    """UAV NaN GT rows: got10k ``ExperimentUAV123`` drops them; the lineage keeps them in the denominator.

    pytracking/OSTrack count them as IoU failures and as precision successes (centre error -1 for 'uav').
    """
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 4)
    gt[2] = np.nan
    pred = np.array([[10.0, 10.0, 20.0, 20.0]] * 4)
    perf = _package_otb(got10k_experiments.ExperimentUAV123, tmp_path, {"bike1": gt}, {"bike1": pred})["overall"]
    mine = M.otb_pytracking([{"name": "bike1", "pred": pred, "gt": gt}], "uav")
    # IoU 1 everywhere valid: success is 1 below t=1 and 0 at t=1 (strict >).
    assert perf["success_score"] == pytest.approx(20 / 21, abs=1e-12)       # NaN frame dropped
    assert mine["AUC"] == pytest.approx(20 * 0.75 / 21, abs=1e-12)          # NaN frame is a failure
    assert mine["P"] == 1.0 and mine["NP"] == 1.0                           # ... but a precision success
    with pytest.raises(ValueError, match="NaN in ground truth"):
        M.otb_pytracking([{"name": "x", "pred": pred, "gt": gt}], "otb")


def test_pytracking_invisible_frames_per_dataset():
    """LaSOT / VastTrack: invisible frames fail everywhere; other datasets: success in normalised precision."""
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 4)
    pred = gt.copy()
    visible = np.array([True, True, False, False])
    seq = [{"name": "a", "pred": pred, "gt": gt, "target_visible": visible}]
    lasot = M.otb_pytracking(seq, "lasot")
    ext = M.otb_pytracking(seq, "lasot_extension_subset")
    vast = M.otb_pytracking(seq, "vasttrack")
    for out in (lasot, ext, vast):
        assert out["OP50"] == 0.5 and out["P"] == 0.5
    assert lasot["NP"] == 0.5 and vast["NP"] == 0.5
    assert ext["NP"] == 1.0


def test_pytracking_prediction_rules():
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 4)
    # Frame 1 is replaced by the GT; the zero-size frame 3 takes frame 2's (perfect) box.
    pred = np.array([[90.0, 90.0, 1.0, 1.0], [10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 0.0, 0.0],
                     [10.0, 10.0, 20.0, 20.0]])
    out = M.otb_pytracking([{"name": "a", "pred": pred, "gt": gt}], "nfs")
    assert out["OP75"] == 1.0 and out["P"] == 1.0
    bad = pred.copy()
    bad[2] = [10.0, 10.0, -1.0, 5.0]
    with pytest.raises(ValueError, match="frame 3 has a negative size"):
        M.otb_pytracking([{"name": "a", "pred": bad, "gt": gt}], "nfs")
    with pytest.raises(ValueError, match="3 rows, ground truth 4"):
        M.otb_pytracking([{"name": "a", "pred": pred[:3], "gt": gt}], "nfs")


def test_pytracking_valid_rule_for_border_boxes():
    """A GT touching the left border (x = 0) is valid for OSTrack/FARTrack (w, h > 0), invalid for pytracking."""
    gt = np.array([[5.0, 5.0, 20.0, 20.0], [0.0, 5.0, 20.0, 20.0]])
    pred = gt.copy()
    seq = [{"name": "a", "pred": pred, "gt": gt}]
    assert M.otb_pytracking(seq, "otb", valid_rule="wh")["OP50"] == 1.0
    assert M.otb_pytracking(seq, "otb", valid_rule="all4")["OP50"] == 0.5


def test_iou_forms_agree_on_overlaps_and_thresholds_are_exact():
    rng = np.random.default_rng(3)
    a = np.concatenate([rng.uniform(0, 50, (200, 2)), rng.uniform(5, 40, (200, 2))], axis=1)
    b = a + rng.normal(0, 4, a.shape)
    b[:, 2:] = np.abs(b[:, 2:]) + 1
    np.testing.assert_allclose(M.iou_pixel_inclusive(a, b), M.iou_continuous(a, b), atol=1e-12)
    assert M.IOU_THRESHOLDS_21[15] == 0.75 and M.IOU_THRESHOLDS_21[3] == 0.15
    assert M.NORM_THRESHOLDS[20] == 0.2 and M.IOU_THRESHOLDS_101[50] == 0.5


# --------------------------------------------------------------------------------------- LaSOT toolkit


def test_lasot_toolkit_rules_hand_computed():
    gt = np.array([[10.0, 10.0, 20.0, 20.0], [10.0, 10.0, 20.0, 20.0], [0.0, 10.0, 20.0, 20.0],
                   [10.0, 10.0, 20.0, 20.0], [10.0, 10.0, 20.0, 20.0]])
    pred = np.array([[0.0, 0.0, 1.0, 1.0], [10.0, 10.0, 20.0, 20.0], [0.0, 10.0, 20.0, 20.0],
                     [10.0, 10.0, 20.0, 20.0], [10.0, 10.0, 0.0, 20.0], [1.0, 1.0, 1.0, 1.0]])  # 1 row too many
    absent = np.array([0, 0, 0, 1, 0])
    out = M.lasot_toolkit([{"name": "a", "pred": pred, "gt": gt, "absent": absent}])
    # frame 1 := GT; frame 3 has x = 0 -> IoU -1 but centre error -1 (success); frame 4 absent -> removed,
    # denominator stays 5; frame 5 (w = 0) takes frame 4's box (perfect). Successes: frames 1, 2, 5.
    assert out["OP50"] == pytest.approx(3 / 5)
    assert out["P"] == pytest.approx(4 / 5) and out["NP"] == pytest.approx(4 / 5)
    # The lineage (OSTrack validity w, h > 0) scores the x = 0 frame as a valid, perfect frame instead.
    pyt = M.otb_pytracking([{"name": "a", "pred": pred[:5], "gt": gt, "target_visible": absent == 0}], "lasot")
    assert pyt["OP50"] == pytest.approx(4 / 5) and pyt["P"] == pytest.approx(4 / 5)


def test_lasot_toolkit_drops_all_zero_sequences():
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 3)
    good = gt.copy()
    lost = gt.copy()
    lost[1:] = [200.0, 200.0, 5.0, 5.0]
    absent_all = np.array([0, 1, 1])
    seqs = [{"name": "good", "pred": good, "gt": gt},
            {"name": "zero", "pred": lost, "gt": gt, "absent": np.array([1, 1, 1])}]
    out = M.lasot_toolkit(seqs)
    pyt = M.otb_pytracking([{"name": s["name"], "pred": s["pred"], "gt": s["gt"]} for s in seqs], "lasot")
    assert out["dropped_zero_sequences"] == ["zero"]
    assert out["OP50"] == 1.0          # only "good" is averaged
    assert pyt["OP50"] == pytest.approx((1.0 + 1 / 3) / 2)
    one = M.lasot_toolkit([{"name": "g", "pred": good, "gt": gt, "absent": absent_all}])
    assert one["OP50"] == pytest.approx(1 / 3)


def test_runs_of_bad_predictions_inherit_the_last_good_box():
    """Both the lineage (w or h == 0) and the MATLAB toolkit (NaN, w or h <= 0) carry the last good box forward."""
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 5)
    pred = np.array([[10.0, 10.0, 20.0, 20.0], [12.0, 10.0, 20.0, 20.0], [0.0, 0.0, 0.0, 5.0],
                     [1.0, 1.0, 5.0, 0.0], [200.0, 200.0, 5.0, 5.0]])
    out = M.otb_pytracking([{"name": "a", "pred": pred, "gt": gt}], "otb")
    # frames 3 and 4 become frame 2's box (IoU 18*20/(2*400-360) = 0.818...): OP75 4/5, frame 5 fails.
    assert out["OP75"] == pytest.approx(4 / 5)
    tool_pred = pred.copy()
    tool_pred[2] = [np.nan, 1.0, 2.0, 3.0]
    tool_pred[3] = [1.0, 1.0, -5.0, 4.0]
    assert M.lasot_toolkit([{"name": "a", "pred": tool_pred, "gt": gt}])["OP75"] == pytest.approx(4 / 5)


def test_trackingnet_devkit_style_areas_hand_computed():
    """Rounded boxes, frame 1 := GT, IoU >= t, trapezoid areas over 21 thresholds (x scaled to [0, 1])."""
    gt = np.array([[10.0, 10.0, 20.0, 20.0]] * 3)
    pred = np.array([[90.0, 90.0, 3.0, 3.0], [10.2, 9.8, 20.4, 19.6], [14.6, 10.0, 20.0, 20.0]])
    out = M.trackingnet_devkit([{"name": "a", "pred": pred, "gt": gt}])
    # frame 3 rounds to x = 15: IoU 300/500 = 0.6 (counted at t = 0.6 since >=), centre error 5 px, 0.25 norm.
    area = lambda values: (sum(values) - (values[0] + values[-1]) / 2) / 20
    assert out["AUC"] == pytest.approx(area([1.0] * 13 + [2 / 3] * 8), abs=1e-12)
    assert out["P"] == pytest.approx(area([2 / 3] * 2 + [1.0] * 19), abs=1e-12)
    assert out["NP"] == pytest.approx(area([2 / 3] * 10 + [1.0] * 11), abs=1e-12)
    assert out["P_at_20px"] == 1.0
    # The same boxes under the lineage: strict > makes IoU 1 fail at t = 1, and P is the value at 20 px.
    pyt = M.otb_pytracking([{"name": "a", "pred": np.round(pred), "gt": gt}], "otb")
    assert pyt["success_curve"][20] == 0.0 and out["success_curve"][20] == pytest.approx(2 / 3)
