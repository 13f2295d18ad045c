"""A run report as one self-contained HTML page: tables of counts, and charts as inline SVG.

::

    RunReport ──► tables: run, records, time and memory, workers, top error groups, notes
        └─ timeline ──► three SVG line charts over time: bytes in flight against the budget,
                        RSS of the process tree, rows/s

The page loads nothing (no script, stylesheet, font or image from anywhere), so it opens
offline and can be attached to a ticket or archived beside the run. Text from the report
(file names, field names, error types, notes) is whatever a messy file held, so it enters
the page only through :func:`_text`, which escapes it: no other function puts data in it.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .report import RunReport
from .timeline import Sample
from .units import format_size

# Chart geometry, in SVG user units (the SVG scales to the page's width).
_W, _H = 760, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 80, 20, 16, 40
#: rows/s is averaged over at least 1/RATE_WINDOWS of the run: rows reach the sinks a chunk
#: at a time, so the rate between two close samples is mostly noise.
RATE_WINDOWS = 40


def write_html_report(report: RunReport | str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Write ``report`` (a :class:`RunReport`, or the path of one saved as JSON) as a page."""
    if not isinstance(report, RunReport):
        report = RunReport.load(report)
    page = render_html(report)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)


def render_html(report: RunReport) -> str:
    """The page for ``report``, as a string."""
    from . import __version__

    if not report.balanced:
        status, css = "counts do not balance", "bad"
    elif report.interrupted:
        status, css = "interrupted" + (f" by {report.stop_signal}" if report.stop_signal else ""), "bad"
    else:
        status, css = "done", "done"
    body = "\n".join([
        f'<h1>FlowSchema run <code>{_text(report.run_id)}</code> <span class="status {css}">{_text(status)}</span></h1>',
        _run_table(report),
        "<h2>Over time</h2>",
        _charts(report),
        '<div class="columns">',
        _records_table(report),
        _time_table(report),
        "</div>",
        _error_groups_table(report),
        _notes(report),
        f"<footer>Written by FlowSchema {_text(__version__)} from the run report.</footer>",
    ])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FlowSchema run {_text(report.run_id)}</title>
<style>{_CSS}</style>
</head>
<body>
{body}
</body>
</html>
"""


def _text(value: object) -> str:
    """``value`` as text that cannot become markup (quotes escaped too: safe in attributes)."""
    return html.escape(str(value), quote=True)


def _table(title: str, table_id: str, header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> str:
    """A table whose every cell is escaped text; cells after the first are right-aligned
    (numbers), except in the tables the stylesheet names."""
    head = "<thead><tr>" + "".join(f"<th>{_text(h)}</th>" for h in header) + "</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{_text(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<section><h2>{_text(title)}</h2><table id="{table_id}">{head}<tbody>{body}</tbody></table></section>'


def _run_table(r: RunReport) -> str:
    rows: list[tuple[str, object]] = [
        ("source", r.source), ("sink", r.sink), ("dead-letter queue", r.errors_sink),
        ("executor", f"{r.executor}, {r.workers} workers"), ("started at", r.started_at or "?"),
    ]
    if r.checkpoint:
        rows.append(("checkpoint", r.checkpoint))
    if r.resumed_from_record:
        rows.append(("resumed after record", f"{r.resumed_from_record:,}"))
    return _table("Run", "run", None, rows)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else ""


def _records_table(r: RunReport) -> str:
    rows: list[tuple[str, str, str]] = [("read", f"{r.rows_read:,}", ""), ("valid", f"{r.rows_valid:,}", _share(r.rows_valid, r.rows_read)),
                                        ("invalid", f"{r.rows_invalid:,}", _share(r.rows_invalid, r.rows_read))]
    rows += [(f"invalid at {stage}", f"{n:,}", _share(n, r.rows_read)) for stage, n in sorted(r.invalid_by_stage.items())]
    rows.append(("filtered by a hook", f"{r.rows_filtered:,}", _share(r.rows_filtered, r.rows_read)))
    rows.append(("read = valid + invalid + filtered", "yes" if r.balanced else "NO: please report this bug", ""))
    return _table("Records", "records", ("", "records", "of read"), rows)


def _time_table(r: RunReport) -> str:
    budget_share = f" ({r.peak_bytes_in_flight / r.max_bytes_in_flight:.0%} of the budget)" if r.max_bytes_in_flight else ""
    rows = [
        ("wall time", f"{r.elapsed_s:,.2f} s"), ("rows per second", f"{r.rows_per_s:,.0f}"),
        ("chunks", f"{r.chunks:,}"), ("bytes read", format_size(r.bytes_read)),
        ("result bytes", format_size(r.result_bytes)), ("chunks split to fit their results", f"{r.result_splits:,}"),
        ("byte budget", format_size(r.max_bytes_in_flight)), ("peak bytes in flight", format_size(r.peak_bytes_in_flight) + budget_share),
        ("reader blocked by the budget", f"{r.blocked_s:,.2f} s ({r.backpressure_waits:,} waits)"),
        ("peak RSS of the process tree", format_size(r.peak_rss_bytes)),
        ("worker restarts", f"{r.worker_restarts:,}"), ("chunk retries", f"{r.retries:,}"),
    ]
    return _table("Time, memory and workers", "timings", None, rows)


def _error_groups_table(r: RunReport) -> str:
    if not r.rows_invalid:
        return '<section><h2>Top error groups</h2><p class="empty">No record was refused.</p></section>'
    rows: list[tuple[object, ...]] = [(g["stage"], g["type"], g["field"] or "(the record)", f"{g['count']:,}", _share(g["count"], r.rows_invalid))
                                      for g in r.error_groups]
    rest = r.rows_invalid - sum(g["count"] for g in r.error_groups)
    if rest > 0:
        rows.append(("", "in no group above", "", f"{rest:,}", _share(rest, r.rows_invalid)))
    return _table("Top error groups", "error-groups", ("stage", "first error", "field", "records", "of invalid"), rows)


def _notes(r: RunReport) -> str:
    if not r.notes:
        return ""
    items = "".join(f"<li>{_text(note)}</li>" for note in r.notes)
    return f'<section><h2>Notes from the source</h2><ul id="notes">{items}</ul></section>'


# -- charts ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Reference:
    """A horizontal line across a chart, such as the byte budget."""

    label: str
    value: float
    css: str


def _charts(r: RunReport) -> str:
    timeline = r.timeline
    if len(timeline) < 2:
        return f'<p class="empty">The report has {len(timeline)} timeline samples: too few to draw.</p>'
    end = timeline[-1]["t"]
    budget = [_Reference(f"budget {format_size(r.max_bytes_in_flight)}", r.max_bytes_in_flight, "budget")] if r.max_bytes_in_flight else []
    return "\n".join([
        _chart("chart-bytes-in-flight", "Bytes in flight against the byte budget", [(s["t"], s["bytes_in_flight"]) for s in timeline], end,
               format_size, [*budget, _Reference(f"peak {format_size(r.peak_bytes_in_flight)}", r.peak_bytes_in_flight, "peak")], binary=True),
        _chart("chart-rss", "Resident memory (RSS) of the process tree", [(s["t"], s["rss"]) for s in timeline], end,
               format_size, [_Reference(f"peak {format_size(r.peak_rss_bytes)}", r.peak_rss_bytes, "peak")], binary=True),
        _chart("chart-rows-per-s", "Rows per second", rows_per_second(timeline), end,
               _count, [_Reference(f"average {r.rows_per_s:,.0f}", r.rows_per_s, "average")], starting=timeline[0]["t"]),
    ])


def rows_per_second(timeline: Sequence[Sample]) -> list[tuple[float, float]]:
    """(t, rows/s) at each sample where rows were written: the rows written since an
    earlier such sample (or the first sample) at least 1/RATE_WINDOWS of the run before,
    divided by the time between them. Rows arrive a chunk at a time; measuring from one
    arrival to another shows the rate without the zeros of the gaps between chunks."""
    if len(timeline) < 2:
        return []
    window = (timeline[-1]["t"] - timeline[0]["t"]) / RATE_WINDOWS
    arrivals = [0] + [i for i in range(1, len(timeline)) if timeline[i]["rows_done"] != timeline[i - 1]["rows_done"]]
    points, k = [], 0  # arrivals[k]: the latest arrival at least `window` before arrival i
    for n, i in enumerate(arrivals[1:], start=1):
        while k + 1 < n and timeline[i]["t"] - timeline[arrivals[k + 1]]["t"] >= window:
            k += 1
        j = arrivals[k]
        dt = timeline[i]["t"] - timeline[j]["t"]
        if dt > 0:
            points.append((timeline[i]["t"], max(0.0, (timeline[i]["rows_done"] - timeline[j]["rows_done"]) / dt)))
    return points


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _seconds(value: float) -> str:
    return f"{value:g} s"


def ticks(maximum: float, *, binary: bool = False, count: int = 4) -> list[float]:
    """Round tick values 0, step, 2·step, ... up to at least ``maximum`` (1-2-2.5-5 steps,
    in powers of 1024 for bytes so that labels read 2.0 MiB, not 2.1 MB)."""
    if maximum <= 0 or not math.isfinite(maximum):
        return [0.0, 1.0]
    unit = 1024 ** min(3, int(math.log(maximum, 1024))) if binary and maximum >= 1024 else 1.0
    raw = maximum / unit / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw) * unit
    return [i * step for i in range(math.ceil(maximum / step - 1e-9) + 1)]


def _chart(chart_id: str, title: str, points: list[tuple[float, float]], x_max: float, fmt: Callable[[float], str],
           references: Sequence[_Reference], *, binary: bool = False, starting: float | None = None) -> str:
    """A line chart of ``points`` (x in seconds, from 0 to ``x_max``), with ``references``
    as dashed lines; before ``starting`` (default: the first point) a band says the
    workers were starting."""
    if len(points) < 2:
        return f'<figure class="chart"><figcaption>{_text(title)}</figcaption><p class="empty">Too few samples to draw.</p></figure>'
    x_max = x_max if x_max > 0 else 1.0
    y_ticks = ticks(max([y for _, y in points] + [ref.value for ref in references]), binary=binary)
    y_max = y_ticks[-1]
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(x: float) -> float:
        return _LEFT + x / x_max * plot_w

    def sy(y: float) -> float:
        return _TOP + plot_h - y / y_max * plot_h

    parts = [f'<rect class="plot" x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}"/>']
    first = points[0][0] if starting is None else starting
    on_top = []  # drawn last, over the lines
    if first > x_max / 50:  # the samples begin once the workers are ready: show the wait
        parts.append(f'<rect class="starting" x="{_LEFT}" y="{_TOP}" width="{sx(first) - _LEFT:.1f}" height="{plot_h}"/>')
        on_top.append(f'<text class="starting-label" x="{(_LEFT + sx(first)) / 2:.1f}" y="{_TOP + plot_h / 2:.1f}">starting workers</text>')
    for y in y_ticks:
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
                     f'<text class="y-tick" x="{_LEFT - 6}" y="{sy(y) + 4:.1f}">{_text(fmt(y))}</text>')
    for x in ticks(x_max):
        if x <= x_max * 1.0001:
            parts.append(f'<line class="tick" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{_TOP + plot_h}" y2="{_TOP + plot_h + 5}"/>'
                         f'<text class="x-tick" x="{sx(x):.1f}" y="{_TOP + plot_h + 18}">{_text(_seconds(round(x, 6)))}</text>')
    label_ys: list[float] = []
    for ref in sorted(references, key=lambda ref: -ref.value):
        y = sy(ref.value)
        label_y = y - 4  # above its line, or below it when that would cover the label above
        if any(abs(label_y - other) < 14 for other in label_ys):
            label_y = y + 14
        label_ys.append(label_y)
        parts.append(f'<line class="ref {ref.css}" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="ref-label {ref.css}" x="{_W - _RIGHT - 4}" y="{label_y:.1f}">{_text(ref.label)}</text>')
    coordinates = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
    parts.append(f'<polyline class="series" data-points="{len(points)}" points="{coordinates}"/>')
    parts += on_top
    parts.append(f'<text class="x-label" x="{_LEFT + plot_w / 2}" y="{_H - 4}">seconds since the run started</text>')
    return (f'<figure class="chart"><figcaption>{_text(title)}</figcaption>'
            f'<svg id="{chart_id}" class="chart-svg" viewBox="0 0 {_W} {_H}" role="img" '
            f'aria-label="{_text(title)}"><title>{_text(title)}</title>{"".join(parts)}</svg></figure>')


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; background: #fff;
       max-width: 1000px; margin: 24px auto; padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 12px; } h2 { font-size: 18px; margin: 24px 0 8px; }
code { font-size: 0.9em; background: #eef1f5; padding: 1px 5px; border-radius: 4px; }
.status { font-size: 14px; font-weight: 600; padding: 2px 8px; border-radius: 10px; vertical-align: middle; }
.status.done { background: #dff3e4; color: #1f6b35; } .status.bad { background: #fbe3e1; color: #a3261f; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e3e7ed; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f4f6f9; font-weight: 600; }
td:not(:first-child), th:not(:first-child) { text-align: right; }
#run td:last-child { text-align: left; }
#error-groups td:nth-child(-n+3), #error-groups th:nth-child(-n+3) { text-align: left; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
.chart { margin: 0 0 16px; } .chart figcaption { font-weight: 600; margin-bottom: 4px; }
.chart-svg { width: 100%; height: auto; display: block; }
.chart-svg .plot { fill: #fbfcfe; stroke: #d5dbe3; }
.chart-svg .grid { stroke: #e3e7ed; } .chart-svg .tick { stroke: #8a94a3; }
.chart-svg text { font-size: 12px; fill: #4a5361; }
.chart-svg .y-tick { text-anchor: end; } .chart-svg .x-tick, .chart-svg .x-label { text-anchor: middle; }
.chart-svg .series { fill: none; stroke: #2f6fde; stroke-width: 2; stroke-linejoin: round; }
.chart-svg .ref { stroke-width: 1.5; stroke-dasharray: 6 4; }
.chart-svg .ref-label { text-anchor: end; font-weight: 600; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
.chart-svg .starting { fill: #eceff3; }
.chart-svg .starting-label { text-anchor: middle; fill: #7a8392; font-style: italic; paint-order: stroke; stroke: #eceff3; stroke-width: 4px; }
.chart-svg .ref.budget { stroke: #d2362f; } .chart-svg .ref.peak { stroke: #e08a00; } .chart-svg .ref.average { stroke: #2c9b55; }
.chart-svg .ref-label.budget { fill: #b52a24; } .chart-svg .ref-label.peak { fill: #9a5c00; } .chart-svg .ref-label.average { fill: #237a43; }
.empty { color: #6b7380; font-style: italic; }
footer { margin-top: 32px; color: #6b7380; font-size: 13px; }
@media (max-width: 700px) { .columns { grid-template-columns: 1fr; } }
"""
