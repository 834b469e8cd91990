"""Training throughput per stage for the tiny (15-layer) and pico (6-layer) models: samples/s, data time vs
step time, through the real loader, stage and optimiser step (not a test: it measures).

    python bench/train_speed.py [--stages fartrack fartrack_distill fartrack_sparse] [--sizes tiny pico]
        [--iters 5] [--warmup 1] [--batch 8] [--clip_frames 8] [--workers 0] [--threads N] [--device cpu]
        [--json OUT]

The data are generated sequences (GOT-10k layout, 240x320 frames) in a temporary folder, read through the
``SYNTHETIC`` dataset. Crops are the shipped configs' (templates 112 px, search 224 px, 5 templates).
Data time is the wait for the next batch (with ``--workers 0`` the full sampling + decoding + cropping cost);
step time is forward + backward + optimiser step. Stage 3 counts clips of ``--clip_frames`` frames each.
Pico runs with ``MODEL.LAYERS 6`` (stage 2: exits 5 and 6; stage 3: rollout and loss at depth 6).
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fartrack.config import LocalSettings, load_config  # noqa: E402
from fartrack.data.synthetic import moving_box_sequence  # noqa: E402
from fartrack.train.distributed import DistInfo  # noqa: E402
from fartrack.train.trainer import TrainOptions, Trainer  # noqa: E402
from fartrack.utils.io import atomic_write_bytes, atomic_write_text  # noqa: E402

CONFIGS = {
    "fartrack": "fartrack_tiny_224_full",
    "fartrack_distill": "fartrack_distill_224_full",
    "fartrack_sparse": "fartrack_sparse_224_full",
}
SIZES = {"tiny": 15, "pico": 6}


def write_sequences(root: Path, sequences: int = 4, frames: int = 80) -> None:
    """Generated sequences in the GOT-10k layout (list.txt, %08d.jpg, groundtruth.txt)."""
    names = []
    for i in range(sequences):
        name = f"SYN_{i:04d}"
        images, boxes = moving_box_sequence(num_frames=frames, height=240, width=320, seed=i)
        for t, image in enumerate(images, start=1):
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]))
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            atomic_write_bytes(root / name / f"{t:08d}.jpg", buf.tobytes())
        atomic_write_text(root / name / "groundtruth.txt", "".join(",".join(f"{v:.3f}" for v in b) + "\n" for b in boxes))
        names.append(name)
    atomic_write_text(root / "list.txt", "\n".join(names) + "\n")


def bench_one(script: str, size: str, args, data_dir: Path, work: Path) -> dict:
    layers = SIZES[size]
    batch = args.clips if script == "fartrack_sparse" else args.batch
    steps = args.warmup + args.iters
    overrides = {
        "MODEL.PRETRAIN_FILE": "",
        "MODEL.PRETRAIN_PTH": "",
        "MODEL.LAYERS": layers,
        "DATA.TRAIN.DATASETS_NAME": ["SYNTHETIC"],
        "DATA.TRAIN.DATASETS_RATIO": [1],
        "DATA.TRAIN.SAMPLE_PER_EPOCH": batch * steps,
        "DATA.VAL.DATASETS_NAME": [],
        "DATA.VAL.DATASETS_RATIO": [],
        "TRAIN.BATCH_SIZE": batch,
        "TRAIN.NUM_WORKER": args.workers,
        "TRAIN.EPOCH": 1,
    }
    if script == "fartrack_distill":
        overrides["MODEL.EXITS"] = list(range(5, layers + 1))
    if script == "fartrack_sparse":
        overrides["DATA.SEARCH.NUMBER"] = args.clip_frames
    cfg = load_config(script, CONFIGS[script], repo_root=REPO_ROOT, overrides=overrides)
    settings = LocalSettings(
        {"workspace_dir": str(work), "pretrained_networks": str(work), "synthetic_dir": str(data_dir)}, work / "none.py"
    )
    opts = TrainOptions(script=script, config_name=f"bench_{size}", save_dir=work / f"{script}_{size}", device=args.device)
    trainer = Trainer(cfg, opts, settings, DistInfo(device=torch.device(args.device)), stream=open(os.devnull, "w"))
    data_times, step_times = [], []
    iterator = iter(trainer.loader)
    for i in range(steps):
        t0 = time.perf_counter()
        batch_data = next(iterator)
        t1 = time.perf_counter()
        trainer.train_step(batch_data, 1, i + 1)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i >= args.warmup:
            data_times.append(t1 - t0)
            step_times.append(t2 - t1)
    data_s, step_s = float(np.mean(data_times)), float(np.mean(step_times))
    unit = "clips" if script == "fartrack_sparse" else "samples"
    return {
        "stage": script, "size": size, "layers": layers, "batch": batch, "unit": unit,
        "frames_per_clip": args.clip_frames if script == "fartrack_sparse" else None,
        "data_s_per_iter": data_s, "step_s_per_iter": step_s,
        "samples_per_s": batch / (data_s + step_s),
        "step_only_samples_per_s": batch / step_s,
    }


def format_table(rows) -> str:
    head = f"{'stage':<17} {'size':<5} {'L':>2} {'batch':>5} {'unit/s':>8} {'step-only/s':>11} {'data s/it':>9} {'step s/it':>9} {'data %':>6}"
    lines = [head, "-" * len(head)]
    for r in rows:
        share = 100 * r["data_s_per_iter"] / (r["data_s_per_iter"] + r["step_s_per_iter"])
        label = r["unit"] + (f" x{r['frames_per_clip']}f" if r["frames_per_clip"] else "")
        lines.append(
            f"{r['stage']:<17} {r['size']:<5} {r['layers']:>2} {r['batch']:>5} {r['samples_per_s']:>8.2f} "
            f"{r['step_only_samples_per_s']:>11.2f} {r['data_s_per_iter']:>9.3f} {r['step_s_per_iter']:>9.3f} {share:>5.0f}%  {label}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--batch", type=int, default=8, help="samples per batch (stages 1-2)")
    parser.add_argument("--clips", type=int, default=1, help="clips per batch (stage 3)")
    parser.add_argument("--clip_frames", type=int, default=8, help="search frames per clip (stage 3; reference 32)")
    parser.add_argument("--workers", type=int, default=0, help="data-loader workers (0: data time = full cost)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="fartrack-train-bench-") as tmp:
            tmp = Path(tmp)
            write_sequences(tmp / "synthetic", frames=max(80, 3 * (args.clip_frames + 5)))
            for script in args.stages:
                for size in args.sizes:
                    row = bench_one(script, size, args, tmp / "synthetic", tmp)
                    rows.append(row)
                    print(format_table([row]).splitlines()[-1], flush=True)
    except Exception as exc:  # noqa: BLE001 - one-line cause, non-zero exit
        print(f"train_speed.py: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    report = {
        "rows": rows,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "device": args.device,
        "iters": args.iters,
        "warmup": args.warmup,
        "workers": args.workers,
    }
    print()
    print(format_table(rows))
    print(f"(torch {report['torch']}, {report['threads']} threads, {report['cpu_count']} CPUs, device {args.device})")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
