"""Track one object through a video file or a folder of frames; write an annotated mp4 and a CSV of boxes.

    python tracking/video_demo.py input.mp4 --init_box 120 80 60 40 --checkpoint FARTrackSparse_ep0015.pth.tar \
        --out tracked.mp4 [--csv boxes.csv] [--show]

Runs headless (the window of --show opens only when a display exists). The CSV has frame,x,y,w,h rows, one
per frame, frame numbers from 1; by default it is written next to --out with the .csv suffix.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.config import ConfigError, load_config  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402

PROG = "video_demo.py"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("source", help="video file (read through OpenCV) or folder of .jpg/.png frames")
    parser.add_argument("--init_box", type=float, nargs=4, required=True, metavar=("X", "Y", "W", "H"),
                        help="target box on the first frame, in pixels (top-left x, y, width, height)")
    parser.add_argument("--checkpoint", required=True, help="tracker weights (.pth.tar)")
    parser.add_argument("--script", default="fartrack_sparse", help="fartrack | fartrack_distill | fartrack_sparse")
    parser.add_argument("--config", default="fartrack_sparse_224_full", help="config name or YAML path")
    parser.add_argument("--layers", type=int, default=None, help="encoder layers to run: 15 tiny, 10 nano, 6 pico")
    parser.add_argument("--out", required=True, help="annotated output video (.mp4)")
    parser.add_argument("--csv", default=None, help="CSV of boxes (default: --out with the .csv suffix)")
    parser.add_argument("--show", action="store_true", help="also display the frames when a display exists")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda if available)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="inference backend (auto: ONNX Runtime on a CPU when installed, else torch)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    """Parse arguments, track, write the outputs; 0 on success, 2 with a one-line error otherwise."""
    args = build_parser().parse_args(argv)
    from fartrack.evaluation.video import FrameReadError, run_video_demo
    from fartrack.models.safe_load import CheckpointError
    from fartrack.tracker.build import build_tracker

    try:
        if not os.path.exists(args.source):
            raise FileNotFoundError(f"input {args.source} not found (give a video file or a folder of frames)")
        if not os.path.isfile(args.checkpoint):
            raise FileNotFoundError(f"checkpoint {args.checkpoint} not found")
        if os.path.splitext(args.out)[1].lower() != ".mp4":
            raise ValueError(f"--out {args.out}: the output video must be an .mp4 file")
        cfg = load_config(args.script, args.config, repo_root=REPO_ROOT)
        kwargs = {"layers": args.layers, "device": args.device}
        kwargs["backend"] = args.backend
        tracker = build_tracker(cfg, args.checkpoint, **kwargs)
        report = run_video_demo(tracker, args.source, args.init_box, args.out, args.csv, show=args.show,
                                progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no output written", file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError, FrameReadError, ValueError, OSError, NotImplementedError,
            ImportError) as err:
        return report_error(PROG, err, one_line=True)
    if args.show and not report["shown"]:
        print(f"{PROG}: note: --show ignored, no display (or an OpenCV build without GUI); the video is written",
              file=sys.stderr)
    print(f"tracked {report['frames']} frames at {report['fps']:.1f} FPS (tracker only); wrote {report['video']} "
          f"and {report['csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
