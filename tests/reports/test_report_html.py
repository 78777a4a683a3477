"""The HTML report in headless Chromium (Debian's `chromium`, driven by Playwright): one
self-contained page that loads with no console error and nothing fetched, shows the numbers
`report --json` gives, on a laptop's width and a phone's; its screenshots are kept under
build/test-artifacts/. `handshake demo` ends by writing it and printing its path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.cli.demo import render_summary
from connector.demo import run_demo

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    folder = tmp_path_factory.mktemp("demo")
    report = folder / "out" / "report.html"
    summary = run_demo(contacts=400, seed=42, workdir=folder / "work", days=14, report=report)
    yield summary, report


def test_the_demo_writes_the_report_and_prints_its_path(
        demo: tuple[dict[str, Any], Path]) -> None:
    summary, report = demo
    assert summary["report"] == str(report.resolve()) and report.is_file()
    page = report.read_text()
    assert page.startswith("<!doctype html>")
    for fetched in ("<script", "src=", "href=", "@import", "url("):  # self-contained
        assert fetched not in page
    assert any(str(report.resolve()) in line for line in render_summary(summary))


def _report_json(db: Path) -> dict[str, Any]:
    """`report --json` of the demo's store (the shipped mapping files, as the demo's config)."""
    from connector.defaults import default_mapping
    from connector.mapping import load_sla
    from connector.pullback.sla_step import as_of
    from connector.reports.report import build_report
    from connector.scoring import Engine, load_model
    from connector.store import Store

    sla, scoring = default_mapping("sla"), default_mapping("scoring")
    assert sla is not None and scoring is not None
    store = Store(f"sqlite:///{db}")
    try:
        now = as_of(store)
        assert now is not None
        return build_report(store, load_sla(sla).spec, now,
                            engine=Engine(load_model(scoring)))
    finally:
        store.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                             "(apt-get install chromium; .ci/run does)")
@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)], ids=["laptop", "phone"])
def test_the_report_renders_in_chromium_with_the_json_numbers(
        demo: tuple[dict[str, Any], Path], viewport: tuple[int, int]) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    _, report = demo
    data = _report_json(report.parent.parent / "work" / "state.db")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.resolve().as_uri())
            figures = {el.get_attribute("data-figure"): (el.text_content() or "").strip()
                       for el in page.locator("[data-figure]").all()}
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(ARTIFACTS / f"report-{viewport[0]}x{viewport[1]}.png"),
                            full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert requests == [report.resolve().as_uri()]  # nothing fetched but the page itself
    assert width <= viewport[0]  # no sideways scrolling of the page (tables scroll inside)
    for stage in ("leads", "mqls", "sqls", "opportunities", "won"):
        assert figures[f"funnel.overall.counts.{stage}"] == \
            f"{data['funnel']['overall']['counts'][stage]:,}"
    assert figures["work_rate.rate"] == f"{data['work_rate']['rate'] * 100:.1f}%"
    assert figures["list_decay.lost"] == f"{data['list_decay']['lost']:,}"
    for reason, n in data["dead"]["by_reason"].items():
        assert figures[f"dead.by_reason.{reason}"] == f"{n:,}"
    assert data["dead"]["by_reason"] and data["sla_by_rep"]
    for rep, row in data["sla_by_rep"].items():
        assert figures[f"sla_by_rep.{rep}.breaches"] == \
            f"{row['open_breaches']} open / {row['past_breaches']} past"
