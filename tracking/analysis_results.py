"""Score tracking results on a benchmark: one table row per results folder, optional JSON and PNG curves.

    python tracking/analysis_results.py --results_dir DIR --dataset NAME [--protocol P] [--json OUT]
           [--plot DIR] [--compare DIR2 ...] [--names N1 N2 ...] [--data_root DIR]

Protocols: got10k (GOT-10k toolkit: AO, SR0.5, SR0.75; default for got10k_val and synthetic), pytracking
(alias otb: AUC, OP50, OP75, P@20px, NP@0.20; default for lasot, lasot_extension_subset, nfs, uav, otb,
vasttrack), lasot_toolkit (official LaSOT MATLAB rules) and trackingnet (TrackingNet devkit-style areas, a
local sanity check on any benchmark with full ground truth). Scores are printed in percent.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.config.local_settings import LocalSettingsError  # noqa: E402
from fartrack.evaluation.analysis import (  # noqa: E402
    PROTOCOL_ALIASES, PROTOCOLS, AnalysisError, analyse, format_table, resolve_protocol, write_json)
from fartrack.evaluation.datasets import BENCHMARKS, DatasetError, load_benchmark  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402


def main(argv=None) -> int:
    """Parse arguments, score every results folder, print the table, write JSON / plots when asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results_dir", required=True, help="folder with <seq>.txt (and <seq>_time.txt)")
    parser.add_argument("--dataset", required=True, choices=BENCHMARKS, help="benchmark the results are for")
    parser.add_argument("--protocol", default=None, choices=list(PROTOCOLS) + sorted(PROTOCOL_ALIASES),
                        help="metric protocol (default: the benchmark's usual one)")
    parser.add_argument("--compare", nargs="+", default=[], metavar="DIR", help="more results folders")
    parser.add_argument("--names", nargs="+", default=None, help="display names, one per results folder")
    parser.add_argument("--data_root", default=None, help="benchmark root (default: lib/test/evaluation/local.py)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write scores and curves as JSON")
    parser.add_argument("--plot", default=None, metavar="DIR", help="write success/precision curves as PNG")
    args = parser.parse_args(argv)
    try:
        protocol = resolve_protocol(args.dataset, args.protocol)
        sequences = load_benchmark(args.dataset, args.data_root)
        reports = analyse([args.results_dir] + list(args.compare), sequences, args.dataset, protocol, args.names)
    except (AnalysisError, DatasetError, LocalSettingsError, ValueError, OSError) as err:
        return report_error("analysis_results", err)
    for report in reports:
        for note in report.warnings:
            print(f"analysis_results: warning: {note}", file=sys.stderr)
    print(format_table(reports))
    try:
        if args.json:
            print(f"wrote {write_json(reports, args.json)}")
        if args.plot:
            from fartrack.evaluation.plots import plot_reports

            for path in plot_reports(reports, args.plot):
                print(f"wrote {path}")
    except (OSError, ValueError) as err:
        return report_error("analysis_results", err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
