"""The HTML page of a run report: only the page's own markup, every data string as text,
charts from the timeline, and nothing loaded from anywhere."""

from __future__ import annotations

import dataclasses
import typing
from html.parser import HTMLParser

import pytest

import flowschema_core as fs
from flowschema_core.html_report import render_html, rows_per_second, ticks, write_html_report

PAYLOAD = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>&amp;<!--"

#: Every element the page's own markup uses; data must never add one.
OWN_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "code", "span", "section", "table", "thead", "tbody", "tr",
            "th", "td", "div", "figure", "figcaption", "svg", "rect", "line", "text", "polyline", "p", "ul", "li", "footer"}


class Page(HTMLParser):
    """Tags, attributes and text of a page, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def by_id(self, element_id: str) -> tuple[str, dict[str, str | None]]:
        return next(t for t in self.tags if t[1].get("id") == element_id)


def timeline(n: int, *, chunk_every: int = 5, rows_per_chunk: int = 1000, dt: float = 0.1) -> list[dict[str, float]]:
    """Samples every ``dt`` s; a chunk of rows reaches the sinks every ``chunk_every`` samples."""
    return [{"t": i * dt, "bytes_in_flight": (i % 7) * 1000, "rss": 50e6 + i * 1e5, "rows_done": (i // chunk_every) * rows_per_chunk}
            for i in range(n)]


def report(**changes: typing.Any) -> fs.RunReport:
    values: dict[str, typing.Any] = {
        "run_id": "r1", "source": "in.csv", "sink": "out.jsonl", "errors_sink": "dlq.jsonl", "executor": "InlineExecutor",
        "rows_read": 10, "rows_valid": 7, "rows_invalid": 2, "rows_filtered": 1, "invalid_by_stage": {"validate": 2},
        "max_bytes_in_flight": 8 << 20, "peak_bytes_in_flight": 6000, "elapsed_s": 5.0, "rows_per_s": 2.0,
        "timeline": timeline(50), "error_groups": [{"stage": "validate", "type": "int_parsing", "field": "id", "count": 2}],
    }
    values.update(changes)
    return fs.RunReport(**values)


def test_every_string_of_the_report_shows_as_text_and_adds_no_markup():
    hostile: dict[str, typing.Any] = {f.name: f"{f.name} {PAYLOAD}" for f in dataclasses.fields(fs.RunReport) if f.type in ("str", str)}
    hostile.update(
        notes=[f"note {PAYLOAD}"], invalid_by_stage={f"stage {PAYLOAD}": 2}, interrupted=True,
        error_groups=[{"stage": f"s {PAYLOAD}", "type": f"t {PAYLOAD}", "field": f"f {PAYLOAD}", "count": 2}],
    )
    assert {"run_id", "source", "sink", "errors_sink", "executor", "stop_signal", "started_at", "checkpoint"} <= set(hostile)
    page = Page(render_html(report(**hostile)))
    assert {tag for tag, _ in page.tags} <= OWN_TAGS
    assert not [name for _, attrs in page.tags for name in attrs if name.startswith("on") or name in ("src", "href")]
    text = "".join(page.texts)
    for value in [*hostile.values(), *hostile["notes"]]:
        if isinstance(value, str):
            assert value in text, value
    for part in ("s ", "t ", "f "):
        assert part + PAYLOAD in text


def test_the_page_loads_nothing_from_anywhere():
    page = render_html(report(source="https://example.org/orders.csv"))
    for marker in ("<script", "<link", "<img", "<iframe", "src=", "href=", "url(", "@import"):
        assert marker not in page.lower()


def test_charts_draw_the_timeline_against_the_budget_and_peaks():
    page = Page(render_html(report()))
    for chart_id in ("chart-bytes-in-flight", "chart-rss", "chart-rows-per-s"):
        assert page.by_id(chart_id)[0] == "svg"
    polylines = [attrs for tag, attrs in page.tags if tag == "polyline"]
    assert [p["data-points"] for p in polylines] == ["50", "50", str(len(rows_per_second(timeline(50))))]
    for attrs in polylines:
        points = str(attrs["points"]).split()
        assert len(points) == int(str(attrs["data-points"]))
        xs = [float(p.split(",")[0]) for p in points]
        assert xs == sorted(xs)
    text = "".join(page.texts)
    assert "budget 8.0 MiB" in text and "peak 5.9 KiB" in text and "average 2" in text


def test_a_report_without_a_timeline_says_so_instead_of_drawing():
    page = render_html(report(timeline=[]))
    assert "<svg" not in page and "too few to draw" in page


def test_counts_tables_and_a_run_without_refused_records():
    text = "".join(Page(render_html(report(rows_invalid=0, rows_valid=9, invalid_by_stage={}, error_groups=[]))).texts)
    assert "No record was refused." in text
    groups = [{"stage": "validate", "type": "int_parsing", "field": "id", "count": 5}, {"stage": "parse", "type": "parse_error", "field": "", "count": 3}]
    text = "".join(Page(render_html(report(rows_read=20, rows_valid=10, rows_invalid=9, rows_filtered=1, error_groups=groups))).texts)
    assert "(the record)" in text  # a parse error is about the record, not one field
    assert "in no group above" in text  # 9 invalid, 8 in the listed groups
    assert "read = valid + invalid + filtered" in text and "NO: please report this bug" not in text
    assert "NO: please report this bug" in "".join(Page(render_html(report(rows_read=11))).texts)


def test_rows_per_second_measures_from_one_arrival_to_the_next_without_the_gaps_zeros():
    # A chunk of 1,000 rows every 0.5 s is 2,000 rows/s, whatever the sampling in between.
    rates = rows_per_second(timeline(100))
    assert len(rates) == 19
    assert all(rate == pytest.approx(2000) for _, rate in rates)
    assert rows_per_second(timeline(1)) == []


@pytest.mark.parametrize(
    ("maximum", "binary", "expected"),
    [
        (7.3, False, [0, 2, 4, 6, 8]),
        (100, False, [0, 25, 50, 75, 100]),
        (6 * 2**20, True, [i * 2**20 * 2 for i in range(4)]),
        (0, False, [0, 1]),
    ],
)
def test_ticks_are_round_and_cover_the_maximum(maximum, binary, expected):
    assert ticks(maximum, binary=binary) == pytest.approx(expected)


def test_write_html_report_takes_a_report_or_its_json_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(report().to_json())
    write_html_report(path, tmp_path / "a.html")
    write_html_report(report(), tmp_path / "b.html")
    assert (tmp_path / "a.html").read_text() == (tmp_path / "b.html").read_text() == report().to_html()
