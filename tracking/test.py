"""Run a FARTrack tracker over a benchmark and write one result file pair per sequence.

    python tracking/test.py fartrack_sparse fartrack_sparse_224_full --dataset lasot --threads 4

Without --checkpoint the weights come from <save_dir>/checkpoints/train/<script>/<config>/<NetClass>_ep%04d.pth.tar
(TEST.EPOCH); without --results_dir results go to <results_path>/<script>/<config>[_layersL]/<dataset>/ (both
roots from lib/test/evaluation/local.py). Complete results are skipped unless --force; a failing sequence is
reported and the others continue; the exit status is non-zero if any sequence failed.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.config import (  # noqa: E402
    ConfigError,
    LocalSettingsError,
    config_to_dict,
    load_config,
    load_test_settings,
)
from fartrack.evaluation.datasets import BENCHMARKS, DatasetError  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402

PROG = "test.py"
SERVER_SCORED = {"got10k_test": "got10k", "trackingnet": "trackingnet"}  # benchmark -> pack_results.py server


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("script", help="fartrack | fartrack_distill | fartrack_sparse")
    parser.add_argument("config", help="config name (experiments/<script>/<config>.yaml) or a YAML path")
    parser.add_argument("--dataset", "--dataset_name", dest="dataset", required=True, choices=BENCHMARKS,
                        metavar="NAME", help=f"benchmark: {', '.join(BENCHMARKS)}")
    parser.add_argument("--checkpoint", default=None, help="weights (default: the TEST.EPOCH checkpoint of the run)")
    parser.add_argument("--results_dir", default=None, help="output folder (default under results_path)")
    parser.add_argument("--threads", type=int, default=0, help="worker processes (0: run in this process)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:K (default: cuda if available)")
    parser.add_argument("--sequence", action="append", default=None, metavar="NAME",
                        help="run only this sequence (name or index; repeatable; a name starting with '-' "
                        "is given as --sequence=-NAME)")
    parser.add_argument("--layers", type=int, default=None, help="encoder layers to run: 15 tiny, 10 nano, 6 pico")
    parser.add_argument("--force", action="store_true", help="recompute sequences whose results exist")
    parser.add_argument("--data_root", default=None,
                        help="benchmark root (default: its path in lib/test/evaluation/local.py)")
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                        help="inference backend (auto: ONNX Runtime on a CPU when installed, else torch)")
    parser.add_argument("--torch_threads", type=int, default=None,
                        help="torch threads per process (default: CPU cores / workers when --threads > 0)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def _device(requested):
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {requested}: CUDA is not available on this machine (use --device cpu)")
    return requested


def main(argv=None) -> int:
    """Parse arguments, run the benchmark, print the summary; 0 if every sequence succeeded."""
    args = build_parser().parse_args(argv)
    from fartrack.evaluation.datasets import benchmark_root
    from fartrack.evaluation.runner import (
        RunSettings,
        build_run_tracker,
        default_checkpoint,
        default_results_dir,
        run_benchmark,
    )
    from fartrack.models.safe_load import CheckpointError

    try:
        if args.threads < 0:
            raise ValueError(f"--threads must be >= 0, got {args.threads}")
        cfg = load_config(args.script, args.config, repo_root=REPO_ROOT)
        settings = None
        if args.checkpoint is None or args.results_dir is None or args.data_root is None:
            settings = load_test_settings(REPO_ROOT)
        checkpoint = args.checkpoint or str(default_checkpoint(cfg, args.script, args.config, settings))
        if not os.path.isfile(checkpoint):
            how = "" if args.checkpoint else f" (the TEST.EPOCH = {cfg.TEST.EPOCH} checkpoint of this run)"
            raise FileNotFoundError(f"checkpoint {checkpoint} not found{how}; train first or pass --checkpoint")
        results_dir = args.results_dir or default_results_dir(settings, args.script, args.config, args.dataset,
                                                              args.layers)
        root = args.data_root or benchmark_root(args.dataset, settings)
        torch_threads = args.torch_threads
        if torch_threads is None and args.threads > 0:
            torch_threads = max(1, (os.cpu_count() or 1) // args.threads)
        run = RunSettings(config_to_dict(cfg), checkpoint, args.layers, _device(args.device), args.backend,
                          torch_threads)
        # Fail fast on a bad checkpoint or config. With --threads 0 this tracker does the work; with workers
        # it is only a check (on the CPU, so the parent holds no GPU memory while the workers run).
        tracker = build_run_tracker(run, "cpu" if args.threads > 0 else None)
        if args.threads > 0:
            tracker = None
        summary = run_benchmark(
            run, args.dataset, results_dir, root=root, sequences=args.sequence, threads=args.threads,
            force=args.force, progress=not args.no_progress, tracker=tracker,
            extra_summary={"script": args.script, "config": args.config},
        )
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; complete results are kept, re-run to finish the rest", file=sys.stderr)
        return 130
    except (ConfigError, LocalSettingsError, DatasetError, CheckpointError, ValueError, OSError,
            NotImplementedError, ImportError) as err:
        return report_error(PROG, err, one_line=True)
    print(summary.text())
    if not summary.failed:
        if args.dataset in SERVER_SCORED:
            print(f"next: python tracking/pack_results.py {SERVER_SCORED[args.dataset]} --results_dir {results_dir} "
                  f"--out {args.dataset}.zip  (the test split is scored by the evaluation server)")
        else:
            print(f"next: python tracking/analysis_results.py --results_dir {results_dir} --dataset {args.dataset}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
