"""Create the per-machine path settings files lib/train/admin/local.py and lib/test/evaluation/local.py.

    python tracking/create_default_local_file.py --workspace_dir . --data_dir ./data --save_dir ./output [--force]

Paths are written as absolute paths (relative ones are resolved against the current directory).
Existing files are kept unless --force is given; with --force they are replaced atomically.
"""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402

from fartrack.config.local_settings import write_local_settings  # noqa: E402


def main(argv=None) -> int:
    """Parse the arguments, write the two files and report what was written or kept."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace_dir", default=".", help="project workspace, usually the repository root (default: .)"
    )
    parser.add_argument("--data_dir", default="./data", help="folder holding the datasets (default: ./data)")
    parser.add_argument("--save_dir", default="./output", help="training and test output root (default: ./output)")
    parser.add_argument("--force", action="store_true", help="overwrite existing settings files")
    args = parser.parse_args(argv)
    results = write_local_settings(
        args.workspace_dir, args.data_dir, args.save_dir, force=args.force, repo_root=REPO_ROOT
    )
    for path, written in results:
        if written:
            print(f"wrote {path}")
        else:
            print(f"skipped {path} (already exists; use --force to overwrite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
