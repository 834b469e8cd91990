"""Train a FARTrack stage from its YAML config, in one process or under torchrun.

    python tracking/train.py --script fartrack|fartrack_distill|fartrack_sparse --config NAME --save_dir DIR \
        --mode single|multiple|multi_node [--nproc_per_node N] [--nnodes K --node_rank R --master_addr A \
        --master_port P] [--use_wandb 0|1] [--resume auto|PATH] [--seed S] [--set KEY=VALUE ...]

Checkpoints: <save_dir>/checkpoints/train/<script>/<config>/<NetClass>_ep%04d.pth.tar; log:
<save_dir>/logs/<script>-<config>.log. Exits non-zero on any failure, with the cause on the last line.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="train.py", description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--script", required=True, choices=["fartrack", "fartrack_distill", "fartrack_sparse"],
                        help="training stage: fartrack (1), fartrack_distill (2), fartrack_sparse (3)")
    parser.add_argument("--config", required=True, help="config name in experiments/<script>/ or a YAML path")
    parser.add_argument("--save_dir", required=True, help="root folder for checkpoints, logs and TensorBoard")
    parser.add_argument("--mode", default="single", choices=["single", "multiple", "multi_node"],
                        help="single: this process; multiple: torchrun on this machine; multi_node: one torchrun "
                             "per machine (default single)")
    parser.add_argument("--nproc_per_node", type=int, default=None,
                        help="processes per machine (GPUs, or CPU processes with gloo); needed for multiple")
    parser.add_argument("--nnodes", type=int, default=1, help="multi_node: number of machines")
    parser.add_argument("--node_rank", type=int, default=0, help="multi_node: rank of this machine (0..nnodes-1)")
    parser.add_argument("--master_addr", default="127.0.0.1", help="multi_node: address of the node-rank-0 machine")
    parser.add_argument("--master_port", type=int, default=29500, help="multi_node: free TCP port on that machine")
    parser.add_argument("--use_wandb", type=int, default=0, choices=[0, 1],
                        help="log to wandb (offline unless an account is configured)")
    parser.add_argument("--resume", default=None,
                        help="auto: continue from the newest checkpoint of this run (fresh start if none); "
                             "or a checkpoint path. Without it, a run folder that holds checkpoints is refused")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default TRAIN.SEED; rank r adds r)")
    parser.add_argument("--set", nargs="+", action="extend", default=None, metavar="KEY=VALUE",
                        help="config overrides, e.g. --set TRAIN.EPOCH=10 TRAIN.BATCH_SIZE=8")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    parser.add_argument("--settings_root", default=None,
                        help="folder holding lib/train/admin/local.py (default: this repository)")
    return parser


def main(argv=None) -> int:
    """Parse the arguments and train (or launch torchrun)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode == "multiple" and args.nproc_per_node is None:
        parser.error("--mode multiple needs --nproc_per_node N")
    if args.mode == "multi_node":
        args.nproc_per_node = args.nproc_per_node or 1
        if not 0 <= args.node_rank < args.nnodes:
            parser.error(f"--node_rank {args.node_rank} must be in 0..{args.nnodes - 1} (--nnodes {args.nnodes})")
    if args.nproc_per_node is not None and args.nproc_per_node < 1:
        parser.error("--nproc_per_node must be >= 1")

    from fartrack.train.launch import main as launch_main

    return launch_main(args, argv, os.path.abspath(__file__))


if __name__ == "__main__":
    sys.exit(main())
