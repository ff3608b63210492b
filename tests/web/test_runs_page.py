"""The runs page, checked by its content in Chromium: the runs list newest first, the filters,
a run's rejected rows (partner data shown as text, never as markup), the report download
(byte for byte the report file), and the charts (their bars are the ledger's figures)."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.api.feeds import create_api
from batchdrop.config import load_config
from batchdrop.pipeline import Pipeline

from .conftest import ARTIFACTS, serve, stop

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "students"
HOSTILE = "<b>bold</b><script>document.title='pwned'</script>"
YESTERDAY = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC).timestamp()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three real loads of the bundled example's schema: the example file (2 rows rejected),
    the same with a value made of markup (rejected too) loaded 'yesterday', and a file
    rejected whole (its header lacks a column)."""
    root = tmp_path_factory.mktemp("site")
    data = yaml.safe_load((EXAMPLE / "batchdrop.yaml").read_text(encoding="utf-8"))
    data.update(inbound="inbound", archive="archive", errors="errors", notify=[])
    data["table"]["url"] = "sqlite:///students.db"
    (root / "batchdrop.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (root / "inbound").mkdir()
    config = load_config(str(root / "batchdrop.yaml"))
    example = (EXAMPLE / "students.csv").read_text(encoding="utf-8")

    def load(name: str, text: str, at: float | None = None) -> Any:
        (root / "inbound" / name).write_text(text, encoding="utf-8")
        if at is None:
            return Pipeline(config, notifiers=[]).process(name)
        with pytest.MonkeyPatch.context() as mp:
            import batchdrop.pipeline as pipeline

            real = pipeline.time.time
            mp.setattr(pipeline.time, "time", lambda: at + (real() % 10))
            return Pipeline(config, notifiers=[]).process(name)

    hostile = example.replace("A1006,Greg", f"{HOSTILE},Greg")
    runs = [
        load("monday.csv", hostile, YESTERDAY),
        load("students.csv", example),
        load("broken.csv", "student_id,fname\nA10001,John\n"),
    ]
    url, handle = serve(create_api(config))
    try:
        yield {"url": url, "runs": runs, "root": root}
    finally:
        stop(handle)


def test_the_runs_list_shows_every_run_newest_first(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page()
    page.goto(site["url"] + "/")
    rows = page.locator("#runs tbody tr[data-run]")
    ids = [rows.nth(i).get_attribute("data-run") for i in range(rows.count())]
    assert ids == sorted((r.run_id for r in site["runs"]), reverse=True)
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert "broken.csv" in texts[0] and "rejected" in texts[0]
    assert "students.csv" in texts[1] and "loaded_with_rejects" in texts[1]
    assert "monday.csv" in texts[2] and "2026-11-27" in texts[2]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-page.png"), full_page=True)
    page.close()


def test_the_filters_narrow_the_list(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page()
    page.goto(site["url"] + "/")
    page.select_option("select[name=status]", "rejected")
    page.click("button[type=submit]")
    files = page.locator("#runs tbody tr[data-run] td:nth-child(2)").all_inner_texts()
    assert files == ["broken.csv"]
    assert "status=rejected" in page.url

    page.goto(site["url"] + "/?day=2026-11-27")
    files = page.locator("#runs tbody tr[data-run] td:nth-child(2)").all_inner_texts()
    assert files == ["monday.csv"]
    page.goto(site["url"] + "/?day=2001-01-01")
    assert page.locator("#runs tbody tr[data-run]").count() == 0
    assert "No runs match these filters" in page.inner_text("#runs")
    page.close()


def test_a_run_page_shows_its_rejected_rows_as_text(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page()
    page.goto(site["url"] + "/")
    page.click("#runs a:text('monday.csv')")
    page.wait_for_selector("#rejected")
    assert page.title().startswith("batchdrop run")  # the value's script never ran
    cells = page.locator("#rejected tbody tr").all_inner_texts()
    assert len(cells) == 2
    assert HOSTILE in cells[0]  # shown as the characters it is
    assert page.locator("#rejected b").count() == 0
    assert "a value is required" in cells[1]
    receipt = page.inner_text("#receipt")
    assert "12 read · 10 loaded · 2 rejected" in receipt
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)
    page.close()


def test_the_report_downloads_byte_for_byte(browser: Any, site: dict[str, Any]) -> None:
    run = next(r for r in site["runs"] if r.file == "students.csv")
    page = browser.new_page()
    page.goto(site["url"] + f"/ui/runs/{run.run_id}")
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "students.rejected.csv"
    got = Path(download.path()).read_bytes()
    assert got == Path(run.rejected_rows_report).read_bytes()
    assert got.count(b"\n") == 3  # the header and the two rejected rows
    page.close()


def test_the_charts_draw_the_ledger_s_figures(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page()
    page.goto(site["url"] + "/")
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    per_day = charts.nth(0)
    labels = per_day.locator("rect title").all_text_contents()
    # each day's sums, from the receipts the loads returned
    days: dict[str, list[int]] = {}
    for r in site["runs"]:
        day = days.setdefault(r.started_at[:10], [0, 0])
        day[0] += r.rows_loaded
        day[1] += r.rows_rejected
    assert sorted(days) == ["2026-11-27", dt.datetime.now(dt.UTC).date().isoformat()]
    assert labels == [
        text
        for day in sorted(days)
        for text in (f"{day}: {days[day][0]} loaded", f"{day}: {days[day][1]} rejected")
    ]
    heights = [
        float(h)
        for h in per_day.locator("rect").evaluate_all("rs => rs.map(r => r.getAttribute('height'))")
    ]
    assert heights[0] > heights[1] > 0  # 10 loaded draws taller than 2 rejected
    speed = charts.nth(1).locator("rect.speed")
    # one bar per run that read rows (the file rejected whole for its header read none)
    assert speed.count() == sum(1 for r in site["runs"] if r.rows_read and r.duration_s) == 2
    page.close()


def test_the_page_has_no_run_for_an_unknown_id(browser: Any, site: dict[str, Any]) -> None:
    page = browser.new_page()
    reply = page.goto(site["url"] + "/ui/runs/nope")
    assert reply is not None and reply.status == 404
    assert "No run nope in the ledger" in page.inner_text("body")
    page.close()


def test_a_report_removed_from_errors_is_a_404_not_a_crash(site: dict[str, Any]) -> None:
    import httpx

    run = next(r for r in site["runs"] if r.file == "monday.csv")
    path = Path(run.rejected_rows_report)
    kept = path.with_suffix(".kept")
    shutil.move(path, kept)
    try:
        reply = httpx.get(site["url"] + f"/runs/{run.run_id}/report")
        assert reply.status_code == 404
        assert "no longer in the errors location" in reply.json()["detail"]
    finally:
        shutil.move(kept, path)
