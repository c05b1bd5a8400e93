"""Charts as inline SVG text: lines over budgets, grouped bars, a strip of per-conversation points.

No plotting library and no script: each chart is an ``<svg class="chart">`` with
``<g class="axis x">``, ``<g class="axis y">``, a ``<g class="legend">`` and its data marks
(``class="point"``), each mark carrying a ``<title>`` with its exact value.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

#: Colour-blind-safe colours (Okabe-Ito, then Tableau), one per series in order.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#8C564B",
    "#7F7F7F",
    "#BCBD22",
)
WIDTH = 900
PLOT_HEIGHT = 260
LEFT, TOP, BOTTOM = 64, 34, 52
LEGEND_WIDTH = 240
LEGEND_ROW = 18
LABEL_CHARS = 32
#: Slanted x labels (many columns) are cut to this length; the full text is in their tooltip.
SLANTED_CHARS = 14
#: Legend labels longer than this are squeezed to the legend's width (``textLength``), so none overflows.
FIT_CHARS = 24


@dataclass
class Series:
    """One line (or one set of bars) of a chart: its label and its ``(x, y)`` points."""

    label: str
    points: list[tuple[float, float]] = field(default_factory=list)
    dashed: bool = False
    color: str = ""


def colours(series: Sequence[Series]) -> None:
    """Give each series without a colour the next one of the palette."""
    for index, item in enumerate(series):
        item.color = item.color or PALETTE[index % len(PALETTE)]


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:.3f}",
) -> str:
    """Lines over the x values (a log scale: budgets double), one per series, each point marked."""
    colours(series)
    xs = sorted({x for s in series for x, _ in s.points})
    ys = [y for s in series for _, y in s.points]
    frame = _Frame(title, len(series), y_range or (0.0, _nice_top(max(ys, default=0.0))))
    position = _log_positions(xs, frame)
    body = [frame.x_axis([(position[x], f"{x:,.0f}") for x in xs], x_label), frame.y_axis(y_label)]
    for item in series:
        points = [(position[x], frame.y(y)) for x, y in sorted(item.points)]
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        body.append(
            f'<polyline class="line" fill="none" stroke="{item.color}" stroke-width="2"{dash} points="{coords}"/>'
        )
        for (x, y), (px, py) in zip(sorted(item.points), points, strict=True):
            body.append(_dot(px, py, item.color, f"{item.label}: {x:,.0f} tokens, {fmt(y)}"))
    body.append(frame.legend([(s.label, s.color, s.dashed) for s in series]))
    return frame.svg(body)


def bar_chart(
    title: str,
    groups: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    fmt: Callable[[float], str] = lambda v: f"{v:.3f}",
) -> str:
    """Grouped bars: ``groups`` along x; each series gives a value per group index (its points' x)."""
    colours(series)
    ys = [y for s in series for _, y in s.points]
    frame = _Frame(title, len(series), y_range or (0.0, _nice_top(max(ys, default=0.0))))
    slot = frame.plot_width / max(1, len(groups))
    bar = max(2.0, min(28.0, slot * 0.8 / max(1, len(series))))
    start = (slot - bar * len(series)) / 2
    ticks = [(LEFT + slot * (i + 0.5), name) for i, name in enumerate(groups)]
    body = [frame.x_axis(ticks, "", rotate=len(groups) > 6), frame.y_axis(y_label)]
    for index, item in enumerate(series):
        for x, y in item.points:
            left = LEFT + slot * int(x) + start + bar * index
            top = frame.y(y)
            height = max(0.5, frame.y(frame.low) - top)
            tip = escape(f"{item.label}, {groups[int(x)]}: {fmt(y)}")
            body.append(
                f'<rect class="point" x="{left:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{item.color}"><title>{tip}</title></rect>'
            )
    body.append(frame.legend([(s.label, s.color, False) for s in series]))
    return frame.svg(body)


def strip_chart(title: str, columns: Sequence[tuple[str, Sequence[tuple[str, float]]]], *, y_label: str) -> str:
    """Per column, a point per conversation, the min-max range as a line and the median as a bar."""
    frame = _Frame(title, 3, (0.0, 1.0))
    slot = frame.plot_width / max(1, len(columns))
    body = [
        frame.x_axis([(LEFT + slot * (i + 0.5), name) for i, (name, _) in enumerate(columns)], "", len(columns) > 6),
        frame.y_axis(y_label),
    ]
    ink, median_ink = PALETTE[0], PALETTE[1]
    for i, (name, values) in enumerate(columns):
        centre = LEFT + slot * (i + 0.5)
        ordered = sorted(v for _, v in values)
        if not ordered:
            continue
        mid = statistics.median(ordered)
        body.append(
            f'<line class="range" x1="{centre:.1f}" x2="{centre:.1f}" y1="{frame.y(ordered[0]):.1f}" '
            f'y2="{frame.y(ordered[-1]):.1f}" stroke="#999" stroke-width="2"/>'
        )
        for j, (conversation, value) in enumerate(values):
            offset = ((j * 7) % 11 - 5) * min(2.0, slot / 40)  # a fixed jitter, so the page is reproducible
            body.append(_dot(centre + offset, frame.y(value), ink, f"{name}, {conversation}: {value:.3f}", radius=3.5))
        half = min(18.0, slot * 0.3)
        body.append(
            f'<line class="median" x1="{centre - half:.1f}" x2="{centre + half:.1f}" y1="{frame.y(mid):.1f}" '
            f'y2="{frame.y(mid):.1f}" stroke="{median_ink}" stroke-width="3"><title>{escape(name)}: median '
            f"{mid:.3f}</title></line>"
        )
    body.append(
        frame.legend([("one conversation", ink, False), ("median", median_ink, False), ("min to max", "#999", False)])
    )
    return frame.svg(body)


def _dot(x: float, y: float, color: str, tip: str, radius: float = 4.0) -> str:
    return (
        f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}">'
        f"<title>{escape(tip)}</title></circle>"
    )


def _nice_top(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(next(step * power for step in (1, 2, 5, 10) if step * power >= value))


def _log_positions(xs: Sequence[float], frame: _Frame) -> dict[float, float]:
    if len(xs) == 1:
        return {xs[0]: LEFT + frame.plot_width / 2}
    logs = [math.log2(max(x, 1e-9)) for x in xs]
    span = (logs[-1] - logs[0]) or 1.0
    pad = frame.plot_width * 0.06
    return {
        x: LEFT + pad + (value - logs[0]) / span * (frame.plot_width - 2 * pad)
        for x, value in zip(xs, logs, strict=True)
    }


class _Frame:
    """The geometry of one chart: plot area, value scale, axes, legend and the outer ``<svg>``."""

    def __init__(self, title: str, entries: int, y_range: tuple[float, float]) -> None:
        self.title = title
        self.low, self.high = y_range
        self.plot_width = WIDTH - LEFT - LEGEND_WIDTH - 16
        self.plot_height = max(PLOT_HEIGHT, entries * LEGEND_ROW + 10)
        self.height = TOP + self.plot_height + BOTTOM + 30

    def y(self, value: float) -> float:
        share = (value - self.low) / ((self.high - self.low) or 1.0)
        return TOP + self.plot_height * (1 - min(1.0, max(0.0, share)))

    def x_axis(self, ticks: Sequence[tuple[float, str]], label: str, rotate: bool = False) -> str:
        base = TOP + self.plot_height
        parts = [
            f'<g class="axis x"><line x1="{LEFT}" x2="{LEFT + self.plot_width}" y1="{base}" y2="{base}" stroke="#333"/>'
        ]
        for x, text in ticks:
            anchor = (
                f'text-anchor="end" transform="rotate(-35 {x:.1f} {base + 16})"' if rotate else 'text-anchor="middle"'
            )
            shown = _short(text, SLANTED_CHARS if rotate else LABEL_CHARS)
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 5}" stroke="#333"/>'
                f'<g><title>{escape(text)}</title><text class="tick" x="{x:.1f}" y="{base + 18}" {anchor}>'
                f"{escape(shown)}</text></g>"
            )
        if label:
            parts.append(
                f'<text class="label" x="{LEFT + self.plot_width / 2:.1f}" y="{base + 42}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
        return "".join(parts) + "</g>"

    def y_axis(self, label: str) -> str:
        parts = [
            f'<g class="axis y"><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + self.plot_height}" stroke="#333"/>'
        ]
        step = (self.high - self.low) / 5
        decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
        for i in range(6):
            value = self.low + step * i
            y = self.y(value)
            parts.append(
                f'<line class="grid" x1="{LEFT}" x2="{LEFT + self.plot_width}" y1="{y:.1f}" y2="{y:.1f}" '
                'stroke="#e4e4e4"/>'
                f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.{decimals}f}</text>'
            )
        middle = TOP + self.plot_height / 2
        parts.append(
            f'<text class="label" x="16" y="{middle:.1f}" text-anchor="middle" transform="rotate(-90 16 {middle:.1f})">'
            f"{escape(label)}</text></g>"
        )
        return "".join(parts)

    def legend(self, entries: Sequence[tuple[str, str, bool]]) -> str:
        left = WIDTH - LEGEND_WIDTH
        parts = ['<g class="legend">']
        for i, (label, color, dashed) in enumerate(entries):
            y = TOP + 8 + i * LEGEND_ROW
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            text = _short(label)
            fit = f' textLength="{LEGEND_WIDTH - 36}" lengthAdjust="spacingAndGlyphs"' if len(text) > FIT_CHARS else ""
            parts.append(
                f'<g class="legend-item"><line x1="{left}" x2="{left + 22}" y1="{y}" y2="{y}" stroke="{color}" '
                f'stroke-width="3"{dash}/><title>{escape(label)}</title>'
                f'<text x="{left + 28}" y="{y + 4}"{fit}>{escape(text)}</text></g>'
            )
        return "".join(parts) + "</g>"

    def svg(self, body: Sequence[str]) -> str:
        return (
            f'<svg class="chart" viewBox="0 0 {WIDTH} {self.height}" '
            f'width="{WIDTH}" height="{self.height}" role="img" aria-label="{escape(self.title)}">'
            f'<text class="title" x="{LEFT}" y="20">{escape(self.title)}</text>{"".join(body)}</svg>'
        )


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
