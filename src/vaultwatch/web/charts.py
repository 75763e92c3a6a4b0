"""Small charts drawn on the server as inline SVG: no chart library, no script, nothing fetched.

Each function returns markup safe to place in a template; every text it
holds (titles, units, labels) is escaped here. A chart carries a ``<title>``
and an ``aria-label`` summarising its last value and range, so it is not
only a picture for people using a screen reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

WIDTH = 360
HEIGHT = 120
_PAD_LEFT = 44
_PAD_RIGHT = 8
_PAD_TOP = 10
_PAD_BOTTOM = 22


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def line_chart(
    points: Sequence[tuple[datetime, float]],
    *,
    title: str,
    unit: str,
    since: datetime,
    until: datetime,
    floor: float | None = 0.0,
    ceiling: float | None = None,
    css_class: str = "",
) -> Markup:
    """A line chart of `points` (time, value) between `since` and `until`, with its axis range.

    `floor`/`ceiling` pin the value axis (e.g. 0 to 100 for percentages);
    otherwise it follows the data. No points: an empty frame saying so.
    """
    classes = " ".join(filter(None, ("chart", css_class)))
    inner_w = WIDTH - _PAD_LEFT - _PAD_RIGHT
    inner_h = HEIGHT - _PAD_TOP - _PAD_BOTTOM
    span = max((until - since).total_seconds(), 1.0)
    head = (
        f'<svg class="{escape(classes)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'preserveAspectRatio="none" width="100%" height="{HEIGHT}" '
    )
    frame = (
        f'<rect class="frame" x="{_PAD_LEFT}" y="{_PAD_TOP}" width="{inner_w}" height="{inner_h}"/>'
    )
    if not points:
        label = f"{title}: no measurements in this window"
        return Markup(
            head + f'aria-label="{escape(label)}"><title>{escape(label)}</title>{frame}'
            f'<text class="none" x="{_PAD_LEFT + inner_w / 2}" y="{_PAD_TOP + inner_h / 2 + 4}" '
            f'text-anchor="middle">no data</text></svg>'
        )
    values = [v for _, v in points]
    low = floor if floor is not None else min(values)
    high = ceiling if ceiling is not None else max(values)
    if high <= low:
        high = low + (abs(low) or 1.0)
    low, high = min(low, min(values)), max(high, max(values))

    def x(at: datetime) -> float:
        return _PAD_LEFT + inner_w * min(max((at - since).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return _PAD_TOP + inner_h * (1 - (value - low) / (high - low))

    path = " ".join(f"{x(at):.1f},{y(v):.1f}" for at, v in points)
    last_at, last = points[-1]
    label = (
        f"{title}: last {_fmt(last)} {unit} at {last_at:%H:%M}; "
        f"range {_fmt(min(values))} to {_fmt(max(values))} {unit} over {len(points)} samples"
    )
    dot = f'<circle class="last" cx="{x(last_at):.1f}" cy="{y(last):.1f}" r="3"/>'
    axis = (
        f'<text class="axis" x="{_PAD_LEFT - 4}" y="{_PAD_TOP + 8}" text-anchor="end">{escape(_fmt(high))}</text>'
        f'<text class="axis" x="{_PAD_LEFT - 4}" y="{_PAD_TOP + inner_h}" text-anchor="end">{escape(_fmt(low))}</text>'
        f'<text class="axis" x="{_PAD_LEFT}" y="{HEIGHT - 6}">{since:%H:%M}</text>'
        f'<text class="axis" x="{WIDTH - _PAD_RIGHT}" y="{HEIGHT - 6}" text-anchor="end">{until:%H:%M}</text>'
        f'<text class="axis unit" x="{_PAD_LEFT + inner_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(unit)}</text>'
    )
    return Markup(
        head + f'aria-label="{escape(label)}"><title>{escape(label)}</title>{frame}{axis}'
        f'<polyline class="line" points="{path}"/>{dot}</svg>'
    )


# -- protection: timelines and bars (the portal) -----------------------------------------------

TIMELINE_WIDTH = 720
TIMELINE_ROW = 22
_TL_TICK_MIN_PX = 1.5


def _span_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min"


def protection_timeline(
    snapshots: Sequence[datetime],
    gaps: Sequence[tuple[datetime, datetime]],
    *,
    since: datetime,
    until: datetime,
    title: str,
    paused: bool = False,
    css_class: str = "",
) -> Markup:
    """One row: a green band with a tick per snapshot and red blocks where the RPO was breached.

    Ticks closer than a pixel and a half are drawn once (a continuous set
    makes hundreds a day); the label still counts them all.
    """
    classes = " ".join(filter(None, ("chart", "timeline", "paused" if paused else "", css_class)))
    width, height = TIMELINE_WIDTH, TIMELINE_ROW
    span = max((until - since).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return width * min(max((at - since).total_seconds() / span, 0.0), 1.0)

    breached = sum((b - a).total_seconds() for a, b in gaps)
    if paused:
        label = f"{title}: paused, no backups expected"
    else:
        label = (
            f"{title}: {len(snapshots)} snapshot{'' if len(snapshots) == 1 else 's'} "
            f"from {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC; "
            + (f"RPO breached for {_span_text(breached)}" if gaps else "RPO met throughout")
        )
    parts = [
        f'<svg class="{escape(classes)}" viewBox="0 0 {width} {height}" role="img" '
        f'preserveAspectRatio="none" width="100%" height="{height}" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>",
        f'<rect class="band" x="0" y="4" width="{width}" height="{height - 8}"/>',
    ]
    for start, end in gaps:
        left = x(start)
        parts.append(
            f'<rect class="gap" x="{left:.1f}" y="2" width="{max(x(end) - left, 1.0):.1f}" '
            f'height="{height - 4}"/>'
        )
    last = -10.0
    for at in sorted(snapshots):
        pos = x(at)
        if pos - last < _TL_TICK_MIN_PX:
            continue
        last = pos
        parts.append(f'<line class="tick" x1="{pos:.1f}" x2="{pos:.1f}" y1="1" y2="{height - 1}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline_axis(since: datetime, until: datetime, *, steps: int = 6) -> Markup:
    """The time labels under a stack of timelines (same width, so they line up)."""
    width = TIMELINE_WIDTH
    span = (until - since).total_seconds()
    fmt = "%H:%M" if span <= 86400 else "%a %d"
    labels = []
    for i in range(steps + 1):
        at = since + (until - since) * (i / steps)
        anchor = "start" if i == 0 else "end" if i == steps else "middle"
        labels.append(
            f'<text class="axis" x="{width * i / steps:.1f}" y="12" text-anchor="{anchor}">'
            f"{escape(at.strftime(fmt))}</text>"
        )
    return Markup(
        f'<svg class="chart timeline-axis" viewBox="0 0 {width} 16" preserveAspectRatio="none" '
        f'width="100%" height="16" aria-hidden="true">{"".join(labels)}</svg>'
    )


def fraction_bar(
    fraction: float | None, *, title: str, state: str = "", width: int = 140, height: int = 12
) -> Markup:
    """A horizontal bar of `fraction` (0..1, clipped at 1; the label keeps the real value)."""
    classes = " ".join(filter(None, ("chart", "bar", f"state-{state}" if state else "")))
    if fraction is None:
        label = f"{title}: unknown"
        fill = 0.0
    else:
        label = f"{title}: {fraction:.0%}"
        fill = min(max(fraction, 0.0), 1.0) * width
    return Markup(
        f'<svg class="{escape(classes)}" viewBox="0 0 {width} {height}" role="img" '
        f'width="{width}" height="{height}" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        f'<rect class="track" x="0" y="0" width="{width}" height="{height}" rx="3"/>'
        f'<rect class="fill" x="0" y="0" width="{fill:.1f}" height="{height}" rx="3"/>'
        f'<line class="mark" x1="{width / 2:.1f}" x2="{width / 2:.1f}" y1="0" y2="{height}"/></svg>'
    )


def sparkline(values: Sequence[float], *, title: str, width: int = 120, height: int = 24) -> Markup:
    """Small bars of `values` side by side (e.g. bytes added per snapshot), tallest = full height."""
    label = f"{title}: {len(values)} values" + (f", largest {_fmt(max(values))}" if values else "")
    parts = [
        f'<svg class="chart spark" viewBox="0 0 {width} {height}" role="img" width="{width}" '
        f'height="{height}" aria-label="{escape(label)}"><title>{escape(label)}</title>'
    ]
    if values:
        top = max(max(values), 1e-9)
        step = width / len(values)
        for i, value in enumerate(values):
            h = max(1.0, height * max(value, 0.0) / top)
            parts.append(
                f'<rect x="{i * step + 0.5:.1f}" y="{height - h:.1f}" '
                f'width="{max(step - 1, 1):.1f}" height="{h:.1f}"/>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
