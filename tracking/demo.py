"""The demo: generate synthetic data, train FARTrack stages 1 -> 2 -> 3, evaluate pico against baselines.

    python tracking/demo.py [--out DIR] [--difficulty easy|medium|hard] [--sequences N] [--val_sequences M]
        [--frames F] [--size WxH] [--set-all KEY=VALUE ...] [--set-stage K KEY=VALUE ...]

Everything goes under --out (default $DEMO_DIR, else output/demo): data/, workspace/ (path settings), train/
(checkpoints and trainer logs), logs/, plots/, results/, final_pico.pth.tar, results.md, results.json and
demo.mp4. Run it again to reuse what is finished: complete data, trained stages (an interrupted stage resumes)
and results of an unchanged model. A failing step stops the demo with one line naming the step and the log.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.demo import DEFAULT_CONFIG, DemoError, DemoOptions, run_demo  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402

PROG = "demo.py"


def _size(text: str):
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"frames must be at least 16x16, got {text!r}")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (see the module docstring)."""
    defaults = DemoOptions(out=".")
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("DEMO_DIR") or os.path.join("output", "demo"),
                        help="folder for everything the demo writes (default: $DEMO_DIR, else output/demo)")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"config of all three stages: experiments/<script>/<name>.yaml (default {DEFAULT_CONFIG})")
    parser.add_argument("--difficulty", default=defaults.difficulty, choices=("easy", "medium", "hard"),
                        help=f"synthetic data difficulty (default {defaults.difficulty})")
    parser.add_argument("--sequences", type=int, default=defaults.train_sequences,
                        help=f"training sequences (default {defaults.train_sequences})")
    parser.add_argument("--val_sequences", type=int, default=defaults.val_sequences,
                        help=f"evaluation sequences (default {defaults.val_sequences})")
    parser.add_argument("--frames", type=int, default=defaults.frames,
                        help=f"frames per sequence (default {defaults.frames})")
    parser.add_argument("--size", type=_size, default=defaults.size, metavar="WxH",
                        help="frame size (default {}x{})".format(*defaults.size))
    parser.add_argument("--seed", type=int, default=defaults.seed, help=f"data seed (default {defaults.seed})")
    parser.add_argument("--workers", type=int, default=defaults.workers,
                        help=f"data generation processes (default {defaults.workers})")
    parser.add_argument("--device", default=None, help="training device: cpu | cuda (default: cuda if available)")
    parser.add_argument("--set-all", dest="set_all", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides for every stage, e.g. --set-all TRAIN.EPOCH=2")
    parser.add_argument("--set-stage", dest="set_stage", nargs="+", action="append", default=[], metavar="K KEY=VALUE",
                        help="config overrides for stage K only, e.g. --set-stage 3 TRAIN.LR=1e-4")
    return parser


def options_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> DemoOptions:
    """:class:`DemoOptions` from parsed arguments (argument errors exit through ``parser.error``)."""
    per_stage = {}
    for item in args.set_stage:
        if len(item) < 2 or item[0] not in ("1", "2", "3"):
            parser.error(f"--set-stage takes a stage number 1, 2 or 3 and KEY=VALUE overrides, got {' '.join(item)}")
        per_stage.setdefault(int(item[0]), []).extend(item[1:])
    for name in ("sequences", "val_sequences", "frames", "workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return DemoOptions(out=args.out, config=args.config, train_sequences=args.sequences,
                       val_sequences=args.val_sequences, frames=args.frames, size=tuple(args.size),
                       difficulty=args.difficulty, seed=args.seed, workers=args.workers, set_all=list(args.set_all),
                       set_stage=per_stage, device=args.device)


def main(argv=None) -> int:
    """Parse arguments and run the demo; 0 on success, non-zero with a one-line error naming the failed step."""
    parser = build_parser()
    args = parser.parse_args(argv)
    options = options_from(args, parser)
    try:
        run_demo(options, os.path.dirname(os.path.abspath(__file__)))
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; run it again to continue (finished steps are reused)", file=sys.stderr)
        return 130
    except DemoError as err:
        return report_error(PROG, err, one_line=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
