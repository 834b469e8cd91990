"""CPU speed of pico, nano and tiny on one generated sequence: masked (reference-equivalent), fast, ONNX Runtime.

    python bench/speed.py [--threads 1,2] [--models pico,nano,tiny] [--paths masked,fast,onnxruntime]
                          [--frames 60] [--runs 40] [--repeats 3] [--json bench/speed.json]

For every thread count, model and path: end-to-end tracker FPS (crop + normalisation + network + decode +
template update; frames are already in memory) and model-only latency (the network work of one frame:
new-template embedding + per-frame network), median and p90 after warm-up; the MACs the path executes per
frame; and the roofline ``2 x MACs / fp32 GEMM throughput``, the GEMM measured by this script on a
2048^3 matmul with the same threads. Paths: ``masked`` mirrors the released code's computation (all 445
tokens, pruned ones masked; templates embedded once, which the release does not do, so it is a slightly
optimistic proxy for it), ``fast`` the default PyTorch path, ``onnxruntime`` the exported graphs.
Weights are random (speed does not depend on them); the sequence is 640x360 unless --width/--height say
otherwise. Each (threads, model) cell measures its paths ``--repeats`` times in turn (masked, fast,
onnxruntime, masked, ...) and reports the median of the repeats' medians and p90s, so a slow spell of a
shared machine hits every path alike instead of one. Prints one table and writes JSON.
"""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

MODELS = {"pico": 6, "nano": 10, "tiny": 15}
PATHS = ("masked", "fast", "onnxruntime")


def cpu_name() -> str:
    """The CPU model name (Linux /proc/cpuinfo), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    """Run the grid, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts")
    parser.add_argument("--models", default="pico,nano,tiny", help=f"subset of {','.join(MODELS)}")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"subset of {','.join(PATHS)}")
    parser.add_argument("--frames", type=int, default=60, help="frames of the generated sequence")
    parser.add_argument("--runs", type=int, default=40, help="timed model-only runs per configuration")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames / runs first")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of every path, taken in turn")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--json", default=os.path.join(REPO_ROOT, "bench", "speed.json"), help="JSON output path")
    args = parser.parse_args(argv)

    import onnxruntime
    import torch

    from fartrack.config import load_config
    from fartrack.data.synthetic import moving_box_sequence
    from fartrack.evaluation.profile import gemm_gflops, profile_tracker
    from fartrack.tracker import build_tracker
    from fartrack.utils.io import atomic_write_text

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    threads_list = [int(t) for t in args.threads.split(",") if t.strip()]
    for name in models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}; expected some of {list(MODELS)}")
    for name in paths:
        if name not in PATHS:
            parser.error(f"unknown path {name!r}; expected some of {list(PATHS)}")

    started = time.perf_counter()
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full", repo_root=REPO_ROOT)
    video = moving_box_sequence(num_frames=max(args.frames, args.warmup + 2), height=args.height, width=args.width, seed=0)
    rows, gemm = [], {}
    for threads in threads_list:
        torch.set_num_threads(threads)
        gemm[threads] = gemm_gflops(threads)
        for model in models:
            trackers = {}
            for path in paths:
                mode, backend = ("fast", "onnxruntime") if path == "onnxruntime" else (path, "torch")
                trackers[path] = build_tracker(cfg, None, layers=MODELS[model], device="cpu", mode=mode, backend=backend)
            reports = {path: [] for path in paths}
            for _ in range(max(args.repeats, 1)):
                for path in paths:
                    reports[path].append(profile_tracker(cfg, threads=threads, frames=args.frames, runs=args.runs,
                                                         warmup=args.warmup, tracker=trackers[path], video=video))
            for path in paths:
                row = _row(model, path, threads, reports[path], gemm[threads])
                rows.append(row)
                print(_format_row(row), flush=True)
    elapsed = time.perf_counter() - started
    machine = {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "torch": torch.__version__,
               "onnxruntime": onnxruntime.__version__, "python": platform.python_version(),
               "gemm_gflops": gemm, "sequence": f"{args.width}x{args.height}, {len(video[0])} frames (generated)",
               "repeats": args.repeats,
               "seconds": round(elapsed, 1)}
    print()
    print(format_table(rows, machine))
    atomic_write_text(args.json, json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.json} ({elapsed:.0f} s)")
    return 0


def _median_of(reports: list[dict], key: str) -> dict:
    """Median over repeats of a timing entry (``tracker_ms`` / ``latency_ms``): median and p90 fields."""
    entries = [r[key] for r in reports]
    out = {name: statistics.median(e[name] for e in entries) for name in ("median", "p90")}
    out["repeats"] = [round(e["median"], 3) for e in entries]
    return out


def _row(model: str, path: str, threads: int, reports: list[dict], gemm: float) -> dict:
    """One table row from the repeated reports of one configuration."""
    macs = reports[0]["macs_executed"]
    e2e, latency = _median_of(reports, "tracker_ms"), _median_of(reports, "latency_ms")
    roofline_ms = 2 * macs / (gemm * 1e9) * 1000
    return {
        "model": model, "layers": MODELS[model], "path": path, "threads": threads,
        "e2e_fps": 1000.0 / e2e["median"], "e2e_ms": e2e, "model_ms": latency, "macs_executed": macs,
        "roofline_ms": roofline_ms, "model_over_roofline": latency["median"] / roofline_ms,
    }


HEADER = (
    "| model | path | threads | e2e FPS | e2e ms (median / p90) | model ms (median / p90) | GMACs/frame "
    "| roofline ms | model / roofline |"
)


def _format_row(row: dict) -> str:
    return (
        f"| {row['model']} ({row['layers']}) | {row['path']} | {row['threads']} | {row['e2e_fps']:.1f} "
        f"| {row['e2e_ms']['median']:.1f} / {row['e2e_ms']['p90']:.1f} "
        f"| {row['model_ms']['median']:.1f} / {row['model_ms']['p90']:.1f} | {row['macs_executed'] / 1e9:.3f} "
        f"| {row['roofline_ms']:.1f} | {row['model_over_roofline']:.2f} |"
    )


def format_table(rows: list[dict], machine: dict) -> str:
    """A markdown table of the rows, headed by the machine it ran on."""
    gemm = ", ".join(f"{t} thread(s): {g:.0f} GFLOP/s" for t, g in machine["gemm_gflops"].items())
    lines = [
        f"CPU: {machine['cpu']} ({machine['logical_cpus']} logical CPUs); torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}; fp32 GEMM {gemm}; sequence {machine['sequence']}",
        "",
        HEADER,
        "|" + "---|" * 9,
    ]
    lines += [_format_row(row) for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
