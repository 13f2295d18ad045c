"""A hand-written SVG bar chart of the bench's results (no plotting library needed).

One section per input (e.g. "2% bad rows"), one row per contender, two bar columns:
rows/s and peak tree RSS, each scaled to its own largest value across the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

LABEL_W, BAR_W, GAP, ROW_H, HEAD_H, TOP = 430, 250, 110, 20, 26, 44
COLOURS = ("#3b6ea8", "#c0504d")


def bar_chart_svg(title: str, sections: Sequence[tuple[str, Sequence[tuple[str, float, float]]]]) -> str:
    """``sections``: (heading, [(contender, rows_per_s, peak_rss_mib), ...]) in display order."""
    all_rows = [row for _, rows in sections for row in rows]
    top_rate = max((r[1] for r in all_rows), default=1.0) or 1.0
    top_rss = max((r[2] for r in all_rows), default=1.0) or 1.0
    height = TOP + sum(HEAD_H + ROW_H * len(rows) for _, rows in sections) + 10
    width = LABEL_W + 2 * (BAR_W + GAP)
    x_rate, x_rss = LABEL_W, LABEL_W + BAR_W + GAP
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<text x="{x_rate}" y="36" fill="{COLOURS[0]}" font-weight="bold">rows/s</text>',
        f'<text x="{x_rss}" y="36" fill="{COLOURS[1]}" font-weight="bold">peak tree RSS (MiB)</text>',
    ]
    y = TOP
    for heading, rows in sections:
        out.append(f'<text x="8" y="{y + 17}" font-weight="bold">{escape(heading)}</text>')
        y += HEAD_H
        for name, rate, rss in rows:
            mid = y + ROW_H / 2 + 4
            out.append(f'<text x="16" y="{mid}">{escape(name)}</text>')
            for x, value, top, colour, text in ((x_rate, rate, top_rate, COLOURS[0], f"{rate:,.0f}"),
                                                 (x_rss, rss, top_rss, COLOURS[1], f"{rss:,.0f}")):
                w = max(1.0, BAR_W * value / top)
                out.append(f'<rect x="{x}" y="{y + 3}" width="{w:.1f}" height="{ROW_H - 6}" fill="{colour}"/>')
                out.append(f'<text x="{x + w + 4:.1f}" y="{mid}">{text}</text>')
            y += ROW_H
    out.append("</svg>")
    return "\n".join(out) + "\n"
