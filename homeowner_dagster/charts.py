"""Pictures of the outcome loop as plain SVG (no plotting library needed): one chart per client-month.

Top: interested replies per 1,000 leads per ZIP, best first; the dot is the shrunk estimate, the
line its 95 % interval, the hollow ring the raw rate, the dashed line the client's average; a ZIP
whose whole line lies left of the dashed line is flagged low-yield (red). Bottom: human replies
and interested replies per week of first reply.
"""

from __future__ import annotations

import base64
from html import escape

import pandas as pd

WIDTH = 640
ROW = 22
LEFT = 90
RIGHT = 40


def yield_chart_svg(client: str, month: str, table: pd.DataFrame, average: float, trend: pd.DataFrame) -> str:
    """The chart as SVG text (title, per-ZIP intervals, weekly trend)."""
    rows = table.head(25)
    plot_w = WIDTH - LEFT - RIGHT
    top = 50
    height_zips = max(1, len(rows)) * ROW
    trend_top = top + height_zips + 60
    trend_h = 120
    height = trend_top + trend_h + 40
    upper = max([average * 1000 * 2, 1.0, *pd.to_numeric(rows.get("upper_per_1000", pd.Series(dtype=float)))]) * 1.05

    def x(value: float) -> float:
        return LEFT + plot_w * float(value) / upper

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{escape(client)} · {escape(month)}: '
        "interested replies per 1,000 leads</text>",
        '<text x="10" y="38" fill="#555">dot = estimate (shrunk to the client average), line = 95% interval, '
        "ring = raw rate</text>",
    ]
    if rows.empty:
        parts.append(f'<text x="{LEFT}" y="{top + 15}">No outcome data yet.</text>')
    for i, r in enumerate(rows.itertuples(index=False)):
        y = top + i * ROW + ROW / 2
        colour = "#c0392b" if bool(r.low_yield) else "#2c7fb8"
        parts += [
            f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{escape(str(r.zip))}</text>',
            f'<line x1="{x(r.lower_per_1000):.1f}" y1="{y}" x2="{x(r.upper_per_1000):.1f}" y2="{y}" '
            f'stroke="{colour}" stroke-width="3"/>',
            f'<circle cx="{x(r.interested_per_1000):.1f}" cy="{y}" r="4" fill="none" stroke="#333"/>',
            f'<circle cx="{x(r.shrunk_per_1000):.1f}" cy="{y}" r="5" fill="{colour}"/>',
            f'<text x="{WIDTH - RIGHT + 4}" y="{y + 4}" fill="#555">{int(r.leads)}</text>',
        ]
    avg_x = x(average * 1000)
    parts += [
        f'<line x1="{avg_x:.1f}" y1="{top - 4}" x2="{avg_x:.1f}" y2="{top + height_zips}" '
        'stroke="#333" stroke-dasharray="4 3"/>',
        f'<text x="{avg_x + 4:.1f}" y="{top + height_zips + 14}">client average {average * 1000:.1f}</text>',
        f'<text x="{WIDTH - RIGHT + 4}" y="{top - 8}" fill="#555">leads</text>',
    ]
    for tick in range(0, int(upper) + 1, max(1, int(upper // 5) or 1)):
        parts.append(f'<text x="{x(tick):.1f}" y="{top + height_zips + 28}" text-anchor="middle" fill="#777">{tick}</text>')
    parts.append(f'<text x="10" y="{trend_top - 12}" font-weight="bold">Replies per week (blue) and interested (green)</text>')
    if trend.empty:
        parts.append(f'<text x="{LEFT}" y="{trend_top + 20}">No replies yet.</text>')
    else:
        peak = max(1, int(trend["replies"].max()))
        bar_w = min(40.0, plot_w / max(1, len(trend)) - 6)
        for i, r in enumerate(trend.itertuples(index=False)):
            bx = LEFT + i * (bar_w + 6)
            h1 = trend_h * int(r.replies) / peak
            h2 = trend_h * int(r.interested) / peak
            parts += [
                f'<rect x="{bx:.1f}" y="{trend_top + trend_h - h1:.1f}" width="{bar_w:.1f}" height="{h1:.1f}" fill="#9ecae1"/>',
                f'<rect x="{bx + bar_w / 4:.1f}" y="{trend_top + trend_h - h2:.1f}" width="{bar_w / 2:.1f}" height="{h2:.1f}" fill="#31a354"/>',
                f'<text x="{bx + bar_w / 2:.1f}" y="{trend_top + trend_h + 14}" text-anchor="middle" font-size="10">'
                f"{pd.Timestamp(r.week).strftime('%b %d')}</text>",
            ]
    parts.append("</svg>")
    return "\n".join(parts)


def markdown_image(svg: str, alt: str) -> str:
    """Markdown that shows the SVG inline (a data URI), for Dagster's Markdown metadata."""
    encoded = base64.b64encode(svg.encode()).decode()
    return f"![{escape(alt)}](data:image/svg+xml;base64,{encoded})"
