"""Pictures of the outcome loop as plain SVG (no plotting library needed): one chart per client-month.

Top: interested replies per 1,000 leads per ZIP, best first; the dot is the estimate, the line
its 90 % interval, the dashed line the client's average; red: below the average with 95 %
confidence ("drop or swap"). With more than `MAX_ROWS` ZIPs the best and the worst halves are
drawn with a marker for the ZIPs between (every ZIP is in the `zip_yield` table beside it).
Bottom: human replies and interested replies per week of first reply, with a count axis.
Every label sits in its own column or row, so none overlaps another or a marker.
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

import pandas as pd

WIDTH = 720
ROW = 22
LEFT = 70  # ZIP labels, right-aligned at LEFT - 8
RIGHT = 190  # "mature / leads" column, then the interval numbers
MAX_ROWS = 30
TICK_FONT = 11


def _rows(table: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The ZIPs drawn (both ends when there are many) and how many are left out between them."""
    if len(table) <= MAX_ROWS:
        return table, 0
    half = MAX_ROWS // 2
    return pd.concat([table.head(half), table.tail(half)]), len(table) - 2 * half


def _ticks(top: float, count: int = 5) -> list[float]:
    raw = top / count
    step = min(
        (s for s in (0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100, 200, 500) if s >= raw), default=raw
    )
    ticks, value = [], 0.0
    while value <= top + 1e-9:
        ticks.append(value)
        value += step
    return ticks


def yield_chart_svg(
    client: str,
    month: str,
    table: pd.DataFrame,
    average: float,
    trend: pd.DataFrame,
    book: Any = None,
) -> str:
    """The chart as SVG text (title, per-ZIP intervals with an x axis, weekly trend with a y axis)."""
    rows, hidden = _rows(table)
    plot_w = WIDTH - LEFT - RIGHT
    top = 74
    lines = len(rows) + (1 if hidden else 0)
    height_zips = max(1, lines) * ROW
    axis_y = top + height_zips + 6
    trend_top = axis_y + 86
    trend_h = 120
    height = trend_top + trend_h + 48
    uppers = pd.to_numeric(rows.get("upper_per_1000", pd.Series(dtype=float)))
    upper = max([average * 1000 * 2, 1.0, *uppers]) * 1.05

    def x(value: float) -> float:
        return LEFT + plot_w * min(max(float(value), 0.0), upper) / upper

    told_apart = bool(book is not None and book.separable)
    mature = (
        f"{book.mature_leads:,} of {book.leads_measured:,} leads old enough to count"
        if book
        else ""
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(client)} · {escape(month)}: '
        "interested replies per 1,000 leads</text>",
        '<text x="10" y="38" fill="#555">dot = estimate, line = 90% interval, dashed = client average, '
        "red = below it with 95% confidence</text>",
    ]
    if not table.empty and not told_apart:
        parts.append(
            '<text x="10" y="56" fill="#b35806">No ZIP differs from the client average with 90% '
            "confidence yet: more leads are needed to tell them apart.</text>"
        )
    elif mature:
        parts.append(f'<text x="10" y="56" fill="#555">{escape(mature)}</text>')
    parts.append(
        f'<text x="{WIDTH - RIGHT + 8}" y="{top - 8}" fill="#555">mature / leads · 90%</text>'
    )
    if rows.empty:
        parts.append(f'<text x="{LEFT}" y="{top + 15}">No outcome data yet.</text>')
    line = 0
    for i, r in enumerate(rows.itertuples(index=False)):
        if hidden and i == MAX_ROWS // 2:
            y = top + line * ROW + ROW / 2
            parts.append(
                f'<text x="{LEFT + plot_w / 2:.1f}" y="{y + 4}" text-anchor="middle" fill="#777">'
                f"… {hidden} ZIPs between (all in the zip_yield table) …</text>"
            )
            line += 1
        y = top + line * ROW + ROW / 2
        line += 1
        colour = "#c0392b" if bool(r.low_yield) else "#2c7fb8"
        parts += [
            f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{escape(str(r.zip))}</text>',
            f'<line x1="{x(r.lower_per_1000):.1f}" y1="{y}" x2="{x(r.upper_per_1000):.1f}" y2="{y}" '
            f'stroke="{colour}" stroke-width="3"/>',
            f'<circle cx="{x(r.shrunk_per_1000):.1f}" cy="{y}" r="5" fill="{colour}"/>',
            f'<text x="{WIDTH - RIGHT + 8}" y="{y + 4}" fill="#555" font-size="{TICK_FONT}">'
            f"{int(getattr(r, 'mature_leads', r.leads)):,} / {int(r.leads):,} · "
            f"{float(r.lower_per_1000):.1f}-{float(r.upper_per_1000):.1f}</text>",
        ]
    avg_x = x(average * 1000)
    parts += [
        f'<line x1="{avg_x:.1f}" y1="{top - 4}" x2="{avg_x:.1f}" y2="{axis_y}" stroke="#333" stroke-dasharray="4 3"/>',
        f'<line x1="{LEFT}" y1="{axis_y}" x2="{LEFT + plot_w}" y2="{axis_y}" stroke="#333"/>',
    ]
    for tick in _ticks(upper):
        tx = x(tick)
        parts += [
            f'<line x1="{tx:.1f}" y1="{axis_y}" x2="{tx:.1f}" y2="{axis_y + 4}" stroke="#333"/>',
            f'<text x="{tx:.1f}" y="{axis_y + 17}" text-anchor="middle" fill="#555" font-size="{TICK_FONT}">{tick:g}</text>',
        ]
    parts += [
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{axis_y + 34}" text-anchor="middle">interested per 1,000 '
        f"leads (client average {average * 1000:.1f})</text>",
        f'<text x="10" y="{trend_top - 18}" font-weight="bold">Replies per week of first reply (blue) '
        "and interested (green)</text>",
    ]
    if trend.empty:
        parts.append(f'<text x="{LEFT}" y="{trend_top + 20}">No replies yet.</text>')
    else:
        peak = max(1, int(trend["replies"].max()))
        ticks = _ticks(peak, 4)
        scale_top = max(ticks[-1], 1.0)
        parts.append(
            f'<line x1="{LEFT}" y1="{trend_top}" x2="{LEFT}" y2="{trend_top + trend_h}" stroke="#333"/>'
        )
        for tick in ticks:
            ty = trend_top + trend_h - trend_h * tick / scale_top
            parts += [
                f'<line x1="{LEFT - 4}" y1="{ty:.1f}" x2="{LEFT}" y2="{ty:.1f}" stroke="#333"/>',
                f'<text x="{LEFT - 8}" y="{ty + 4:.1f}" text-anchor="end" fill="#555" font-size="{TICK_FONT}">{tick:g}</text>',
            ]
        parts.append(
            f'<line x1="{LEFT}" y1="{trend_top + trend_h}" x2="{LEFT + plot_w}" y2="{trend_top + trend_h}" stroke="#333"/>'
        )
        slot = plot_w / max(1, len(trend))
        bar_w = min(40.0, slot - 6)
        every = max(1, int(48 // slot) + 1)  # a week label needs about 48 px
        for i, r in enumerate(trend.itertuples(index=False)):
            bx = LEFT + 3 + i * slot
            h1 = trend_h * int(r.replies) / scale_top
            h2 = trend_h * int(r.interested) / scale_top
            parts += [
                f'<rect x="{bx:.1f}" y="{trend_top + trend_h - h1:.1f}" width="{bar_w:.1f}" height="{h1:.1f}" fill="#9ecae1"/>',
                f'<rect x="{bx + bar_w / 4:.1f}" y="{trend_top + trend_h - h2:.1f}" width="{bar_w / 2:.1f}" height="{h2:.1f}" fill="#31a354"/>',
            ]
            if i % every == 0:
                parts.append(
                    f'<text x="{bx + bar_w / 2:.1f}" y="{trend_top + trend_h + 14}" text-anchor="middle" '
                    f'font-size="10">{pd.Timestamp(r.week).strftime("%b %d")}</text>'
                )
        parts.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{trend_top + trend_h + 32}" text-anchor="middle">week of first reply</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def markdown_image(svg: str, alt: str) -> str:
    """Markdown that shows the SVG inline (a data URI), for Dagster's Markdown metadata."""
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})"
