"""Pack results into the zip an evaluation server accepts (GOT-10k test or TrackingNet TEST).

    python tracking/pack_results.py got10k|trackingnet --results_dir DIR --out ZIP [--data_root DIR] [--force]

Every sequence of the benchmark (read from the dataset: GOT-10k ``test/list.txt``, TrackingNet ``TEST/anno``)
must have a result with one box per frame, finite values and positive sizes (GOT-10k also a time file);
otherwise nothing is written. The raw results are never moved, changed or deleted.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.config.local_settings import LocalSettingsError  # noqa: E402
from fartrack.evaluation.datasets import DatasetError, load_benchmark  # noqa: E402
from fartrack.evaluation.packing import SERVERS, PackError, pack_results  # noqa: E402
from fartrack.utils.cli import report_error  # noqa: E402


def main(argv=None) -> int:
    """Parse arguments, validate the results against the benchmark and write the archive."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=sorted(SERVERS), help="evaluation server the archive is for")
    parser.add_argument("--results_dir", required=True, help="folder with <seq>.txt and <seq>_time.txt")
    parser.add_argument("--out", required=True, help="zip file to write (outside the results folder)")
    parser.add_argument("--data_root", default=None,
                        help="benchmark root (default: lib/test/evaluation/local.py)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    args = parser.parse_args(argv)
    try:
        sequences = load_benchmark(SERVERS[args.server], args.data_root)
        counts = {seq.name: len(seq.frames) for seq in sequences}
        out = pack_results(args.server, args.results_dir, counts, args.out, overwrite=args.force)
    except (PackError, DatasetError, LocalSettingsError, ValueError, OSError) as err:
        return report_error("pack_results", err)
    print(f"wrote {out} ({len(counts)} sequences, {args.server} layout)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
