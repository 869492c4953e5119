"""A vendor's history as SVG plots, drawn on the server by matplotlib.

One figure per plot, rendered through matplotlib's object API (no pyplot: no
global state, safe in the read threads), text kept as text so the SVG stays
small and readable by screen readers through the page's own caption and table.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence

from rbl.store.history import Day

WIDTH, HEIGHT = 7.2, 2.6  # inches at 100 dpi: fits a desktop column, scales down on a phone


def _figure():
    import matplotlib

    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "rbl", "font.size": 9,
                                "font.family": "sans-serif"})
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def _svg(figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="svg", metadata={"Date": None, "Creator": "rbl"})
    return out.getvalue()


def _axis(axes, first: dt.date, last: dt.date) -> None:
    import matplotlib.dates as mdates

    axes.set_xlim(first - dt.timedelta(days=0.5), last + dt.timedelta(days=0.5))
    locator = mdates.AutoDateLocator(maxticks=8)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)


def score_plot(days: Sequence[Day], first: dt.date, last: dt.date, cooperative: float, negligent: float) -> bytes:
    """The vendor's score per day, with the tier thresholds; days without a score leave a gap."""
    figure, axes = _figure()
    dates = [d.day for d in days]
    scores = [d.score if d.score is not None else float("nan") for d in days]
    axes.axhspan(cooperative, 1.05, color="#e3f1e3", zorder=0)
    axes.axhspan(-0.05, negligent, color="#f7e1e1", zorder=0)
    axes.axhline(cooperative, color="#2f7d32", linewidth=0.8, linestyle="--", label=f"cooperative at {cooperative:g}")
    axes.axhline(negligent, color="#b3261e", linewidth=0.8, linestyle="--", label=f"negligent below {negligent:g}")
    axes.plot(dates, scores, color="#1a4d8f", marker="o", markersize=3, linewidth=1.6, label="score")
    axes.set_ylim(-0.05, 1.05)
    axes.set_ylabel("score")
    _axis(axes, first, last)
    axes.legend(loc="center left", fontsize=7, frameon=False, ncols=3)  # the band between the thresholds
    return _svg(figure)


def listed_plot(days: Sequence[Day], first: dt.date, last: dt.date) -> bytes:
    """Addresses listed in the vendor's space per day."""
    figure, axes = _figure()
    axes.bar([d.day for d in days], [d.listed for d in days], width=0.8, color="#1a4d8f")
    axes.set_ylabel("listed addresses")
    axes.set_ylim(bottom=0, top=max([d.listed for d in days] + [1]) * 1.15)
    _axis(axes, first, last)
    return _svg(figure)
