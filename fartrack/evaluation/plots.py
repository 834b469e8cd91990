"""Success / precision / normalised-precision curves as PNG (matplotlib Agg canvas: no display, no LaTeX).

Several trackers share one figure per curve type; the legend gives each tracker's score (OTB/LaSOT style),
sorted best first.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np

from fartrack.utils.io import atomic_write_bytes

PathLike = Union[str, os.PathLike]

# (curve key, x-axis key, score key, title, x label, file stem)
_CURVES = {
    "got10k": [("success_curve", "thresholds", "AO", "Success plot", "Overlap threshold", "success")],
    "otb": [
        ("success_curve", "thresholds", "AUC", "Success plot", "Overlap threshold", "success"),
        ("precision_curve", "pixel_thresholds", "P", "Precision plot", "Location error threshold [px]",
         "precision"),
        ("norm_precision_curve", "norm_thresholds", "NP", "Normalized precision plot",
         "Normalized location error threshold", "norm_precision"),
    ],
}


def _figure_png(entries, curve_key: str, x_key: str, score_key: str, title: str, xlabel: str) -> bytes:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with rc_context({"text.usetex": False, "font.size": 9}):
        fig = Figure(figsize=(5.5, 4.2), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        order = sorted(entries, key=lambda e: -float(e.scores[score_key]))
        styles = ["-", "--", "-.", ":"]
        for i, rep in enumerate(order):
            x = np.asarray(rep.scores[x_key], dtype=np.float64)
            y = np.asarray(rep.scores[curve_key], dtype=np.float64)
            ax.plot(x, y, styles[(i // 10) % len(styles)], linewidth=1.8,
                    label=f"{rep.name} [{100.0 * float(rep.scores[score_key]):.1f}]")
        ax.set_xlim(float(x.min()), float(x.max()))
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Success rate" if curve_key == "success_curve" else "Precision")
        ax.set_title(f"{title} on {order[0].dataset} ({order[0].protocol})")
        ax.grid(True, alpha=0.4)
        ax.legend(loc="lower left" if curve_key == "success_curve" else "lower right", fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_reports(reports: Sequence, out_dir: PathLike) -> List[Path]:
    """Draw every curve type of the reports' protocol into ``out_dir`` (``<dataset>_<curve>.png``, atomic).

    All reports must share one dataset and protocol; returns the files written.
    """
    if not reports:
        raise ValueError("no reports to plot")
    protocols = {r.protocol for r in reports}
    if len(protocols) != 1:
        raise ValueError(f"reports mix protocols {sorted(protocols)}; plot one protocol at a time")
    protocol = protocols.pop()
    specs = _CURVES["got10k" if protocol == "got10k" else "otb"]
    written = []
    for curve_key, x_key, score_key, title, xlabel, stem in specs:
        png = _figure_png(reports, curve_key, x_key, score_key, title, xlabel)
        written.append(atomic_write_bytes(Path(out_dir) / f"{reports[0].dataset}_{stem}.png", png))
    return written
