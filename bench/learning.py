"""bench/learning: the demo's three-stage recipe trained longer, with its learning curve.

``make demo`` must finish in 30 minutes; this recipe asks how far FARTrack-pico gets on the same synthetic val
split with more time on the same 2 CPU cores (about 45 minutes by default; ``--stage1_epochs 200`` is about 3 hours). It runs the demo
pipeline (:mod:`fartrack.demo`) into its own folder with longer stages, then evaluates every saved stage-1
checkpoint on the val split and plots training IoU and val AO against training time, next to the baselines.

Resumable: rerunning the same command continues an interrupted stage (``--resume auto``), reuses finished
stages, evaluations and results, and only redraws the curve. Everything goes under ``--out``.

    python bench/learning.py [--out output/learning] [--stage1_epochs 40] [--curve_every 5]

Writes ``<out>/learning_curve.png``, ``<out>/learning_curve.json`` and the demo's outputs (``results.md``, ...).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fartrack.demo.pipeline import Demo, DemoError, DemoOptions, StepFailure, run_logged, sha256_file  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402
from fartrack.utils.io import atomic_write_bytes, atomic_write_text  # noqa: E402

_EPOCH_DONE = re.compile(r"\bepoch (\d+) done in ([0-9.]+) s")
_CHECKPOINT = re.compile(r"_ep(\d+)\.pth\.tar$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "output" / "learning", help="output folder")
    parser.add_argument("--stage1_epochs", type=int, default=40, help="stage-1 epochs (demo: 20; ~45 s each here)")
    parser.add_argument("--stage2_epochs", type=int, default=8, help="stage-2 epochs (demo: 4)")
    parser.add_argument("--stage3_epochs", type=int, default=6, help="stage-3 epochs (demo: 3)")
    parser.add_argument("--curve_every", type=int, default=5, help="evaluate every N-th stage-1 epoch")
    parser.add_argument("--train_sequences", type=int, default=400,
                        help="training sequences (the val split does not depend on it: it stays the demo's)")
    return parser


def epoch_seconds(log: Path) -> Dict[int, float]:
    """``{epoch: seconds}`` from the trainer's ``epoch N done in X s`` lines (a resumed epoch: its last run)."""
    seconds: Dict[int, float] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _EPOCH_DONE.search(line)
        if match:
            seconds[int(match.group(1))] = float(match.group(2))
    return seconds


def epoch_end_values(log: Path, key: str) -> Dict[int, float]:
    """The last logged value of ``key`` in each epoch (the trainer logs running means within an epoch)."""
    from fartrack.demo.losses import read_loss_log

    return {epoch: value for epoch, _, _, value in read_loss_log(log, key).points}


def evaluate_checkpoint(demo: Demo, config: str, checkpoint: Path, folder: Path) -> float:
    """Val AO of a stage-1 checkpoint (results reused when the checkpoint is unchanged)."""
    from fartrack.evaluation.analysis import analyse
    from fartrack.evaluation.datasets import load_benchmark

    stamp_path = folder / "checkpoint.json"
    digest = sha256_file(checkpoint)
    stamp = json.loads(stamp_path.read_text()) if stamp_path.is_file() else None
    if stamp is None or stamp.get("sha256") != digest:
        cmd = [sys.executable, demo.scripts / "test.py", "fartrack", config, "--dataset", "synthetic",
               "--checkpoint", checkpoint, "--data_root", demo.data, "--results_dir", folder, "--threads", "0",
               "--device", "cpu", "--force", "--no_progress"]
        run_logged(cmd, demo.logs / "learning_curve_eval.log", cwd=REPO, echo=False)
        atomic_write_text(stamp_path, json.dumps({"checkpoint": str(checkpoint), "sha256": digest}))
    sequences = load_benchmark("synthetic", demo.data)
    return float(analyse([folder], sequences, "synthetic", "got10k", [checkpoint.name])[0].scores["AO"])


def learning_curve(demo: Demo, every: int) -> Dict[str, Any]:
    """Training IoU per epoch and val AO of every ``every``-th stage-1 checkpoint, against training hours."""
    from fartrack.train.checkpointing import run_dir

    log = demo.save_dir / "logs" / f"fartrack-{demo.opts.config}.log"
    seconds = epoch_seconds(log)
    hours, total = {}, 0.0
    for epoch in sorted(seconds):
        total += seconds[epoch]
        hours[epoch] = total / 3600.0
    iou = epoch_end_values(log, "IoU")
    _, config = demo.test_config(1)
    folder = run_dir(demo.save_dir, "fartrack", demo.opts.config)
    val = []
    for ckpt in sorted(folder.glob("FARTrack_ep*.pth.tar")):
        epoch = int(_CHECKPOINT.search(ckpt.name).group(1))
        if epoch % every and epoch != max(seconds):
            continue
        ao = evaluate_checkpoint(demo, config, ckpt, demo.out / "curve" / ckpt.stem)
        print(f"[learning] stage-1 epoch {epoch} ({hours.get(epoch, float('nan')):.2f} h): val AO {ao:.3f}", flush=True)
        val.append({"epoch": epoch, "hours": hours.get(epoch), "val_AO": ao})
    later = {}
    for number, script in ((2, "fartrack_distill"), (3, "fartrack_sparse")):
        path = demo.save_dir / "logs" / f"{script}-{demo.opts.config}.log"
        later[f"stage{number}_hours"] = sum(epoch_seconds(path).values()) / 3600.0 if path.is_file() else None
    return {"train_IoU": [{"epoch": e, "hours": hours.get(e), "IoU": v} for e, v in sorted(iou.items())],
            "val": val, **later}


def plot_curve(curve: Dict[str, Any], rows: List[Dict[str, Any]], out_png: Path) -> Path:
    """Training IoU and val AO against hours, with the final model and the baselines as reference lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    train = [p for p in curve["train_IoU"] if p["hours"] is not None]
    ax.plot([p["hours"] for p in train], [p["IoU"] for p in train], "-", color="tab:blue",
            label="stage 1: training IoU (epoch mean)")
    val = [p for p in curve["val"] if p["hours"] is not None]
    ax.plot([p["hours"] for p in val], [p["val_AO"] for p in val], "-o", color="tab:green", markersize=3,
            label="stage 1 checkpoints: val AO")
    end = (train[-1]["hours"] if train else 0.0) + (curve.get("stage2_hours") or 0.0) + (curve.get("stage3_hours") or 0.0)
    styles = {"static": ("k", ":"), "CSRT": ("tab:orange", "--"), "KCF": ("tab:red", "--")}
    for row in rows:
        name = row["tracker"]
        if "ours" in name:
            ax.plot([end], [row["AO"]], "*", color="tab:green", markersize=12, label=f"final pico (stage 3): AO {row['AO']:.3f}")
            continue
        color, dash = next((v for k, v in styles.items() if k in name), ("grey", "--"))
        ax.axhline(row["AO"], color=color, linestyle=dash, linewidth=1.0, label=f"{name}: AO {row['AO']:.3f}")
        if "static" in name:
            ax.axhline(row["AO"] + 0.15, color="k", linestyle="-.", linewidth=0.8, label="target: static AO + 0.15")
    ax.set_xlabel("training time on this machine (hours)")
    ax.set_ylabel("IoU / AO")
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper left", fontsize=7)
    ax.set_title("bench/learning: FARTrack-pico on the synthetic val split")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(out_png, buffer.getvalue())


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("stage1_epochs", "stage2_epochs", "stage3_epochs", "curve_every", "train_sequences"):
        if getattr(args, name) < 1:
            return report_error("learning.py", f"--{name} must be at least 1, got {getattr(args, name)}")
    stages = {1: args.stage1_epochs, 2: args.stage2_epochs, 3: args.stage3_epochs}
    set_stage = {n: [f"TRAIN.EPOCH={e}", f"TEST.EPOCH={e}", f"TRAIN.SAVE_EVERY_EPOCH={args.curve_every}"]
                 for n, e in stages.items()}
    options = DemoOptions(out=args.out, train_sequences=args.train_sequences, set_stage=set_stage)
    try:
        demo = Demo(options, REPO / "tracking")
        summary = demo.run()
        curve = learning_curve(demo, args.curve_every)
    except (DemoError, StepFailure) as exc:
        return report_error("learning.py", str(exc))
    rows = [{k: r[k] for k in ("tracker", "AO", "SR0.5", "SR0.75", "FPS")} for r in summary["rows"]]
    record = {"stages_epochs": stages, "train_sequences": args.train_sequences, "results": rows, **curve}
    atomic_write_text(demo.out / "learning_curve.json", json.dumps(record, indent=2))
    png = plot_curve(curve, rows, demo.out / "learning_curve.png")
    static = next(r["AO"] for r in rows if "static" in r["tracker"])
    ours = next(r["AO"] for r in rows if "ours" in r["tracker"])
    verdict = "reached" if ours >= static + 0.15 else "NOT reached"
    print(f"\n[learning] final pico AO {ours:.3f}; static AO {static:.3f}; target static + 0.15 = {static + 0.15:.3f}: "
          f"{verdict}\n[learning] curve: {png} (data: {demo.out / 'learning_curve.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
