"""Line plots written as PNG files: loss curves, keyframe schedules, noise schedules.

One small helper so every plot in the project looks alike and is written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nodegraph import atomic_path


def save_line_plot(
    path: Path,
    lines: Sequence[tuple[str, Sequence[float], Sequence[float], dict]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    log_y: bool = False,
    size: tuple[float, float] = (6, 3.2),
) -> Path:
    """Draw `lines` = [(label, xs, ys, matplotlib style), ...] on one axis and write a PNG.
    Labels starting with "_" are left out of the legend (matplotlib's rule)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, xs, ys, style in lines:
        ax.plot(list(xs), list(ys), label=label, **style)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    if sum(1 for label, *_ in lines if not label.startswith("_")) > 1:
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)
