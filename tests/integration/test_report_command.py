"""``flowschema report``: the report of a real run as text and as an HTML page opened in a
real headless Chromium; bad input gets one line and exit status 2."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.chromium import require_chromium, run_chromium
from tests.integration.report_models import HOSTILE, write_hostile_csv
from tests.integration.test_cli import flowschema

ROWS = 30_000


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    """A real CLI run (2 worker processes, small chunks so that many reach the sinks) whose
    input has a column named like markup, with refused records in two groups on it."""
    tmp = tmp_path_factory.mktemp("report")
    source = tmp / "hostile.csv"
    write_hostile_csv(source, ROWS, bad_every=10)
    done = flowschema("run", source, "--model", "tests.integration.report_models:HostileItem", "--sink", tmp / "out.jsonl",
                      "--errors", tmp / "dlq.jsonl", "--workers", "2", "--chunk-bytes", "32KiB", "--max-bytes-in-flight", "512KiB",
                      "--report", tmp / "run.json", "--quiet")
    assert done.returncode == 0, done.stderr
    return tmp / "run.json"


def test_the_run_report_holds_a_timeline_and_the_error_groups(real_run):
    report = json.loads(real_run.read_text())
    assert report["rows_read"] == ROWS and report["rows_invalid"] == 2 * (ROWS // 10) - 1
    assert report["error_groups"] == [
        {"stage": "validate", "type": "decimal_parsing", "field": HOSTILE, "count": ROWS // 10},
        {"stage": "validate", "type": "greater_than_equal", "field": HOSTILE, "count": ROWS // 10 - 1},
    ]
    timeline = report["timeline"]
    assert len(timeline) >= 10, timeline
    assert timeline[0]["rows_done"] == 0 and timeline[-1]["rows_done"] == ROWS
    assert [s["t"] for s in timeline] == sorted(s["t"] for s in timeline)
    assert max(s["rss"] for s in timeline) == report["peak_rss_bytes"]


def test_report_prints_the_summary(real_run):
    done = flowschema("report", real_run)
    assert done.returncode == 0, done.stderr
    assert f"read {ROWS:,} = valid" in done.stdout and "peak RSS of the process tree" in done.stdout


class Dom(HTMLParser):
    """Elements and text of the DOM that Chromium built."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_the_html_page_renders_in_chromium_with_charts_and_no_markup_from_the_data(real_run, tmp_path):
    from PIL import Image

    chromium = require_chromium()
    page = tmp_path / "report.html"
    done = flowschema("report", real_run, "--html", page)
    assert done.returncode == 0 and done.stdout.strip() == f"wrote {page}", done.stderr
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html.lower()  # the hostile column name is in it only as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    dom_run = run_chromium(chromium, page, "--dump-dom")
    assert dom_run.console == []  # no script, no failed load, no error of any kind
    dom = Dom(dom_run.stdout)
    assert not [tag for tag, _ in dom.elements if tag in ("script", "img", "iframe", "link", "object")]
    charts = {attrs["id"]: attrs for tag, attrs in dom.elements if tag == "svg"}
    assert set(charts) == {"chart-bytes-in-flight", "chart-rss", "chart-rows-per-s"}
    polylines = [attrs for tag, attrs in dom.elements if tag == "polyline"]
    assert len(polylines) == 3
    points = [len(str(p["points"]).split()) for p in polylines]
    assert points[0] >= 10 and points[1] >= 10 and points[2] >= 3, points
    text = " ".join(dom.texts)
    assert HOSTILE in text and "decimal_parsing" in text and f"{ROWS:,}" in text

    shot = tmp_path / "report.png"
    shot_run = run_chromium(chromium, page, f"--screenshot={shot}", window=(1100, 1400))
    assert shot_run.console == []
    with Image.open(shot) as image:
        assert image.size == (1100, 1400)
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None
    most_common = max(count for count, _ in colours)
    assert len(colours) >= 100, len(colours)  # text, lines and their anti-aliasing
    assert most_common < 0.95 * 1100 * 1400  # not a blank (all white) page
    series_blue = sum(count for count, (r, g, b) in colours if abs(r - 0x2F) < 24 and abs(g - 0x6F) < 24 and abs(b - 0xDE) < 24)
    assert series_blue >= 300, series_blue  # the charts' lines were drawn


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "run report not found"),
        ('{"run_id": "x", "record": 3, "stage": "validate", "errors": []}\n', "is not a FlowSchema run report"),
        ("not json at all", "is not a FlowSchema run report: not JSON"),
        ('{"run_id": "x", "source": "a", "sink": "b", "errors_sink": "c", "executor": "d", "rows_read": "many", '
         '"rows_valid": 0, "rows_invalid": 0, "rows_filtered": 0}', "rows_read"),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    done = flowschema("report", path, "--html", tmp_path / "report.html", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert not (tmp_path / "report.html").exists()


def test_an_unwritable_html_path_gets_one_line_and_exit_2(real_run, tmp_path):
    done = flowschema("report", real_run, "--html", tmp_path / "no-such-dir" / "report.html")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "cannot write" in done.stderr
