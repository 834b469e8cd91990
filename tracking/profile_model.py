"""Profile a FARTrack model: params, MACs, model-only latency and end-to-end tracker FPS.

    python tracking/profile_model.py --script fartrack_sparse --config fartrack_sparse_224_full [--layers 6] [--json OUT]
        [--backend auto|torch|onnxruntime] [--mode auto|fast|masked|removed|dense] [--threads N]

Without --checkpoint the weights are random (speed and size do not depend on them). The default is the
fastest exact path: the fast network, run by ONNX Runtime on the CPU when it is installed (--backend auto).
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import json  # noqa: E402

from fartrack.config import ConfigError, load_config  # noqa: E402
from fartrack.evaluation.profile import format_report, profile_tracker  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402
from fartrack.utils.io import atomic_write_text  # noqa: E402


def main(argv=None) -> int:
    """Parse arguments, profile, print the summary and optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", default="fartrack_sparse", help="fartrack | fartrack_distill | fartrack_sparse")
    parser.add_argument("--config", default="fartrack_sparse_224_full", help="experiment config name")
    parser.add_argument("--layers", type=int, default=None, help="layers to run: 15 tiny, 10 nano, 6 pico")
    parser.add_argument("--checkpoint", default=None, help="weights to load (default: random init)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--mode", default="auto", choices=["auto", "fast", "masked", "removed", "dense"],
                        help="network mode (auto = fast: pruned tokens removed, fused attention)")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime"],
                        help="network runtime (auto: ONNX Runtime on the CPU when installed, the fastest exact path)")
    parser.add_argument("--frames", type=int, default=60, help="frames of the generated sequence")
    parser.add_argument("--runs", type=int, default=50, help="timed model-only runs after warm-up")
    parser.add_argument("--json", default=None, help="write the full report as JSON to this path")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.script, args.config, repo_root=REPO_ROOT)
        report = profile_tracker(
            cfg, layers=args.layers, checkpoint=args.checkpoint, device=args.device, threads=args.threads,
            mode=args.mode, backend=args.backend, frames=args.frames, runs=args.runs,
        )
    except (ConfigError, ValueError, OSError) as err:
        return report_error("profile_model", err)
    report.update(script=args.script, config=args.config)
    print(format_report(report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
