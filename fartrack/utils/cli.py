"""Command-line helpers shared by the ``tracking/`` scripts."""

from __future__ import annotations

import sys

__all__ = ["EXIT_ERROR", "report_error"]

#: Exit status of a script that stopped on a user-facing error (bad arguments, files, config, ...).
EXIT_ERROR = 2


def report_error(prog: str, err: BaseException, *, one_line: bool = False) -> int:
    """Print ``<prog>: error: <err>`` to stderr and return :data:`EXIT_ERROR` (``return report_error(...)``).

    ``one_line`` joins a multi-line message with `` | `` so the error stays a single line.
    """
    message = " | ".join(str(err).splitlines()) if one_line else str(err)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_ERROR
