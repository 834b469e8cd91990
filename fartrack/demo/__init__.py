"""``make demo``: train FARTrack-pico on generated data in three stages and compare it with baselines.

:func:`run_demo` runs the whole pipeline (:mod:`fartrack.demo.pipeline`); :mod:`fartrack.demo.losses` reads
and checks the training-loss curves, :mod:`fartrack.demo.report` writes the score table and the demo video.
"""

from fartrack.demo.pipeline import DEFAULT_CONFIG, DemoError, DemoOptions, run_demo

__all__ = ["DEFAULT_CONFIG", "DemoError", "DemoOptions", "run_demo"]
