"""Generate the synthetic tracking dataset (no download): textured targets moving over textured backgrounds.

    python tracking/make_synthetic.py --out ./data/synthetic [--sequences 200] [--val_sequences 20] [--seed 0] \
        [--difficulty easy|medium|hard] [--frames 80] [--size 320x240] [--layout got10k|lasot] [--photos DIR] \
        [--workers 1]

Writes <out>/train and <out>/val in the GOT-10k layout (or the LaSOT layout) with exact labels (boxes,
absence, cover). Training reads it as the SYNTHETIC dataset (settings key synthetic_dir), evaluation as the
synthetic benchmark (settings key synthetic_path, or tracking/test.py --data_root). Re-running the same command
completes an interrupted run or reports that the data is up to date; other parameters over an existing folder
are refused (nothing is deleted). Levels and labels: fartrack/data/synthetic.py.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.data.synthetic import DIFFICULTIES, SyntheticDataError  # noqa: E402
from fartrack.data.synthetic_writer import LAYOUTS, write_synthetic  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402

PROG = "make_synthetic.py"


def _size(text: str):
    """``WxH`` -> (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 320x240, got {text!r}") from None
    return width, height


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", required=True, help="output folder (new, empty, or an earlier run of this command)")
    parser.add_argument("--sequences", type=int, default=200, help="training sequences (default 200)")
    parser.add_argument("--val_sequences", type=int, default=20, help="validation / test sequences (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--difficulty", default="easy", choices=tuple(DIFFICULTIES), help="default easy")
    parser.add_argument("--frames", type=int, default=80, help="frames per sequence (default 80)")
    parser.add_argument("--size", type=_size, default=(320, 240), metavar="WxH", help="frame size (default 320x240)")
    parser.add_argument("--layout", default="got10k", choices=LAYOUTS, help="on-disk layout (default got10k)")
    parser.add_argument("--photos", default=None, metavar="DIR",
                        help="folder of your own .jpg/.png pictures to crop some backgrounds and targets from")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    return parser


class _Progress:
    """Prints a line every ~10 % of the sequences."""

    def __init__(self):
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth != self.last or done == total:
            self.last = tenth
            print(f"{PROG}: {done}/{total} sequences ({100 * done // total}%)", flush=True)


def _usage_lines(out: str, layout: str) -> str:
    if layout == "lasot":
        return (
            f"  training:   LASOT with lasot_dir = {out!r} in lib/train/admin/local.py and DATA.SPLITS_DIR "
            f"pointing at {out} (it holds lasot_train_split.txt)\n"
            f"  evaluation: python tracking/test.py SCRIPT CONFIG --dataset lasot --data_root {out} "
            f"(reads testing_set.txt)"
        )
    return (
        f"  training:   dataset SYNTHETIC in DATA.TRAIN.DATASETS_NAME, with synthetic_dir = {out!r} in "
        f"lib/train/admin/local.py\n"
        f"  evaluation: python tracking/test.py SCRIPT CONFIG --dataset synthetic --data_root {out} "
        f"(or synthetic_path = {out!r} in lib/test/evaluation/local.py)"
    )


def main(argv=None) -> int:
    """Parse arguments, generate (or complete) the dataset and say how to use it."""
    args = build_parser().parse_args(argv)
    try:
        summary = write_synthetic(
            args.out, train_sequences=args.sequences, val_sequences=args.val_sequences, seed=args.seed,
            difficulty=args.difficulty, num_frames=args.frames, size=args.size, layout=args.layout,
            photos=args.photos, workers=args.workers, progress=_Progress(),
        )
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; complete sequences are kept, re-run the same command to finish", file=sys.stderr)
        return 130
    except (SyntheticDataError, ValueError, OSError) as err:
        return report_error(PROG, err, one_line=True)
    out = os.path.abspath(summary["out_dir"])
    if summary["up_to_date"]:
        print(f"{PROG}: {out} is up to date ({summary['sequences']} sequences); nothing to do")
    else:
        print(f"{PROG}: wrote {summary['generated']} sequences ({summary['frames_written']} frames) to {out} in "
              f"{summary['seconds']:.1f} s ({summary['frames_per_second']:.0f} frames/s)")
    print(_usage_lines(out, args.layout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
