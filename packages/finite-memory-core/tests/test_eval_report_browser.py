"""The report pages in a real headless Chromium: no console error, no request, every chart drawn whole.

Skipped where no Chromium is installed, unless ``FINITE_MEMORY_REQUIRE_BROWSER=1`` (CI sets
it, after installing Debian's ``chromium``). Screenshots are written under the test's tmp
folder, and copied to ``$FINITE_MEMORY_ARTIFACTS`` when it is set; their paths are printed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _chromium import Chromium, find_chromium
from _report_data import run_document

from finite_memory.eval.report import render_comparison, render_report

EXECUTABLE = find_chromium()
if EXECUTABLE is None and os.environ.get("FINITE_MEMORY_REQUIRE_BROWSER") == "1":
    raise RuntimeError("FINITE_MEMORY_REQUIRE_BROWSER=1 but no Chromium is installed (apt-get install chromium)")
pytestmark = pytest.mark.skipif(EXECUTABLE is None, reason="no Chromium installed (Debian: apt-get install chromium)")

#: Measures every chart as the browser laid it out: axes with ticks, a legend, points inside the picture.
MEASURE = """
[...document.querySelectorAll("svg.chart")].map((svg) => {
  const frame = svg.getBoundingClientRect();
  const inside = (element) => {
    const b = element.getBoundingClientRect();  // as drawn: after rotations and text layout
    return b.left >= frame.left - 0.5 && b.top >= frame.top - 0.5
      && b.right <= frame.right + 0.5 && b.bottom <= frame.bottom + 0.5;
  };
  const texts = [...svg.querySelectorAll("text")];
  const points = [...svg.querySelectorAll(".point")];
  const legend = svg.querySelector(".legend");
  const xLine = svg.querySelector(".axis.x line");
  return {
    title: svg.getAttribute("aria-label"),
    shown: svg.getBoundingClientRect().width > 100 && svg.getBoundingClientRect().height > 100,
    xTicks: svg.querySelectorAll(".axis.x text.tick").length,
    yTicks: svg.querySelectorAll(".axis.y text.tick").length,
    yLabel: (svg.querySelector(".axis.y text.label") || {}).textContent || "",
    legendItems: svg.querySelectorAll(".legend .legend-item").length,
    legendInside: legend ? inside(legend) : false,
    textsInside: texts.filter(inside).length === texts.length,
    legendRightOfPlot: legend && xLine ? legend.getBBox().x >= Number(xLine.getAttribute("x2")) : false,
    points: points.length,
    pointsInside: points.filter(inside).length,
    pointsDrawn: points.filter((p) => p.getBBox().width > 0 && p.getBBox().height > 0).length,
  };
})
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    assert EXECUTABLE is not None
    with Chromium(EXECUTABLE, tmp_path_factory.mktemp("chromium-profile")) as running:
        yield running


def keep(shot: bytes, path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path.write_bytes(shot)
    where = [path]
    artifacts = os.environ.get("FINITE_MEMORY_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        where.append(Path(shutil.copy(path, Path(artifacts) / path.name)))
    with capsys.disabled():
        print(f"\nscreenshot of the page: {', '.join(map(str, where))}")


def assert_every_chart_is_whole(charts: list[dict[str, Any]], titles: int) -> None:
    assert len(charts) == titles
    for chart in charts:
        assert chart["shown"], chart
        assert chart["xTicks"] >= 1 and chart["yTicks"] >= 2 and chart["yLabel"], chart
        assert chart["textsInside"], f"a label of {chart['title']!r} is cut off"
        assert chart["legendItems"] >= 1 and chart["legendInside"] and chart["legendRightOfPlot"], chart
        assert chart["points"] >= 1, chart
        assert chart["pointsInside"] == chart["points"] == chart["pointsDrawn"], chart


def test_the_report_page_in_a_real_browser(
    browser: Chromium, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_report(run_document(("sliding", "semantic", "hybrid"), (256, 512, 1024))))
    run = browser.load(page, MEASURE, screenshot=True)
    assert run.errors == []
    assert run.requests == []
    assert_every_chart_is_whole(run.result, titles=7)
    assert run.screenshot.startswith(b"\x89PNG") and len(run.screenshot) > 20_000
    keep(run.screenshot, tmp_path / "eval-report.png", capsys)


def test_the_comparison_page_in_a_real_browser(
    browser: Chromium, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = run_document(), run_document()
    a["source"], b["source"] = "before.json", "after.json"
    for result in b["results"]:
        result["overall"] *= 0.8
    page = tmp_path / "diff.html"
    page.write_text(render_comparison(a, b))
    run = browser.load(page, MEASURE + ".concat([document.querySelectorAll('td.worse').length])", screenshot=True)
    assert run.errors == [] and run.requests == []
    *charts, worse = run.result
    assert_every_chart_is_whole(charts, titles=3)
    assert worse == len(a["results"]), "every recall fell: every row has a red cell"
    keep(run.screenshot, tmp_path / "eval-compare.png", capsys)


def test_the_checks_catch_a_page_that_breaks_the_rules(browser: Chromium, tmp_path: Path) -> None:
    """The negative control: a request and a console error are seen, and the request went nowhere but the sink."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><body>"
        '<img src="http://finite-memory.invalid/pixel.png">'
        "<script>console.error('an error on purpose')</script>"
        '<svg class="chart" viewBox="0 0 100 100" width="100" height="100">'
        '<circle class="point" cx="150" cy="5" r="3"/></svg>'
        "</body></html>"
    )
    run = browser.load(page, MEASURE)
    assert run.requests == ["http://finite-memory.invalid/pixel.png"]
    assert "an error on purpose" in run.errors
    assert any("finite-memory.invalid" in line for line in browser.proxy.seen)
    chart = run.result[0]
    assert chart["xTicks"] == 0 and chart["legendItems"] == 0 and chart["pointsInside"] == 0 < chart["points"]
