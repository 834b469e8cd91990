"""Tracker memory over a long generated sequence: RSS and template-store size, bounded vs unbounded store.

    python bench/memory.py [--frames 5000] [--layers 1] [--cap 256] [--backend auto] [--json OUT]

Each store setting runs in a fresh process (so one run's allocator state cannot hide the other's growth):
the default bounded store (``TrackerParams.template_cap``) and the reference's unbounded one (every
template the schedule can still select, ~0.7 n after n frames). RSS is read from /proc at the checkpoints.
The template memory does not depend on the depth, so the default runs 1 layer for speed (random weights;
``--layers 6`` or ``15`` gives the same store sizes). The video is a 200-frame generated 320x240 sequence
played forwards and backwards, so motion stays continuous for any length. ``--backend`` picks the network
runtime as ``tracking/test.py`` does (``auto``: ONNX Runtime on a CPU when installed, the default path).
"""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402

CHECKPOINTS = (100, 500, 1000, 2500, 5000)


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(frames: int, layers: int, cap: int | None, backend: str = "auto") -> dict:
    """Track ``frames`` frames and return RSS / store size at the checkpoints (runs in its own process)."""
    import torch

    from fartrack.config import load_config
    from fartrack.data.synthetic import moving_box_sequence
    from fartrack.tracker import build_tracker

    torch.set_num_threads(1)
    cfg = load_config("fartrack_sparse", "fartrack_sparse_224_full", repo_root=REPO_ROOT)
    tracker = build_tracker(cfg, None, layers=layers, device="cpu", template_cap=cap, backend=backend)
    video, boxes = moving_box_sequence(num_frames=200, height=240, width=320, seed=0)
    order = list(range(200)) + list(range(198, 0, -1))
    tracker.initialize(video[0], boxes[0])
    marks = sorted({c for c in CHECKPOINTS if c <= frames} | {frames})
    rows = []
    for index in range(1, frames + 1):
        tracker.track(video[order[index % len(order)]])
        if index in marks:
            cached = sum(
                sum(t.numel() * t.element_size() for t in (s.tokens, s.keep, s.kept_index, s.kept_tokens) if t is not None)
                for s in tracker.memory.values()
            )
            rows.append({"frame": index, "rss_mb": round(rss_mb(), 1), "stored_templates": len(tracker.memory),
                         "cached_mb": round(cached / 2**20, 2), "thinned": tracker.memory.thinned})
    return {"cap": cap, "layers": layers, "backend": "torch" if tracker.backend is None else "onnxruntime", "rows": rows}


def main(argv=None) -> int:
    """Run both store settings in subprocesses, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--cap", type=int, default=None, help="bounded store cap (default: TrackerParams default)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="network runtime (auto: ONNX Runtime on a CPU when installed, as tracking/test.py)")
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        cap = None if args.child == "none" else int(args.child)
        print(json.dumps(child(args.frames, args.layers, cap, args.backend)))
        return 0
    from fartrack.tracker.schedule import DEFAULT_TEMPLATE_CAP
    from fartrack.utils.io import atomic_write_text

    cap = DEFAULT_TEMPLATE_CAP if args.cap is None else args.cap
    results = []
    for setting in (str(cap), "none"):
        cmd = [sys.executable, os.path.abspath(__file__), "--frames", str(args.frames), "--layers", str(args.layers),
               "--backend", args.backend, "--child", setting]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            print(f"memory: error: the {setting} run failed: {run.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        results.append(json.loads(run.stdout.strip().splitlines()[-1]))
    print(f"backend: {results[0]['backend']}")
    print(f"{'store':>12} {'frame':>6} {'RSS MiB':>8} {'templates':>9} {'cached MiB':>10} {'thinned':>7}")
    for result in results:
        name = "unbounded" if result["cap"] is None else f"cap {result['cap']}"
        for row in result["rows"]:
            print(f"{name:>12} {row['frame']:>6} {row['rss_mb']:>8.1f} {row['stored_templates']:>9} "
                  f"{row['cached_mb']:>10.2f} {row['thinned']:>7}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"frames": args.frames, "runs": results}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
