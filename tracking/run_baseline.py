"""Run a baseline tracker (static first-frame box, OpenCV CSRT or KCF) over a benchmark, like tracking/test.py.

    python tracking/run_baseline.py --tracker static|csrt|kcf --dataset synthetic --data_root DIR --results_dir DIR

Writes <results_dir>/<seq>.txt (x,y,w,h per frame) and <seq>_time.txt exactly as tracking/test.py does, skips
complete results unless --force, and exits 1 if any sequence failed. CSRT and KCF keep their last box when
OpenCV loses the target. Score the folder with tracking/analysis_results.py.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.config.local_settings import LocalSettingsError  # noqa: E402
from fartrack.evaluation.datasets import BENCHMARKS, DatasetError  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402

PROG = "run_baseline.py"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--tracker", required=True, choices=("static", "csrt", "kcf"),
                        help="static: the first-frame box on every frame; csrt / kcf: OpenCV contrib trackers")
    parser.add_argument("--dataset", required=True, choices=BENCHMARKS, metavar="NAME",
                        help=f"benchmark: {', '.join(BENCHMARKS)}")
    parser.add_argument("--data_root", default=None,
                        help="benchmark root (default: its path in lib/test/evaluation/local.py)")
    parser.add_argument("--results_dir", required=True, help="output folder")
    parser.add_argument("--sequence", action="append", default=None, metavar="NAME",
                        help="run only this sequence (name or index; repeatable)")
    parser.add_argument("--force", action="store_true", help="recompute sequences whose results exist")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    """Parse arguments, run the baseline, print the summary; 0 if every sequence succeeded."""
    args = build_parser().parse_args(argv)
    from fartrack.evaluation.baselines import run_baseline

    try:
        summary = run_baseline(args.tracker, args.dataset, args.data_root, args.results_dir,
                               sequences=args.sequence, force=args.force, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; complete results are kept, re-run to finish the rest", file=sys.stderr)
        return 130
    except (DatasetError, LocalSettingsError, ValueError, OSError, ImportError) as err:
        return report_error(PROG, err, one_line=True)
    print(summary.text())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
