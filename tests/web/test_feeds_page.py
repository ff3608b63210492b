"""The runs page of a deployment with feeds (no browser needed: the page is plain HTML): every
feed's runs, the feed column, and the feed filter; a feed's rejected-rows report downloads from
that feed's errors location."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from batchdrop.api.feeds import create_api
from batchdrop.config import load_config
from batchdrop.router import Router

from ..cli.test_feeds_cli import CONFIG
from .conftest import serve, stop

LINKED = r">([\w/]+\.csv)</a>"  # the file names the runs table links


def test_the_feed_filter_keeps_one_feed_s_runs(tmp_path: Path) -> None:
    (tmp_path / "batchdrop.yaml").write_text(CONFIG)
    inbound = tmp_path / "inbound"
    (inbound / "students").mkdir(parents=True)
    (inbound / "students" / "s1.csv").write_text("id,name\nA1,Ada\n")
    (inbound / "grades_2026.csv").write_text("id,course,grade\nA1,maths,17\nA2,maths,x\n")
    config = load_config(str(tmp_path / "batchdrop.yaml"))
    for name in ("students/s1.csv", "grades_2026.csv"):
        Router(config, notifiers=[]).process(name)

    url, handle = serve(create_api(config))
    try:
        check(httpx.Client(base_url=url))
    finally:
        stop(handle)


def check(client: httpx.Client) -> None:
    everything = client.get("/").text
    assert {"students/s1.csv", "grades_2026.csv"} <= set(
        re.findall(r">([\w/]+\.csv)</a>", everything)
    )
    assert '<option value="grades">grades</option>' in everything
    only = client.get("/", params={"feed": "grades"}).text
    assert re.findall(LINKED, only) == ["grades_2026.csv"]
    run_id = re.search(r'data-run="([^"]+)"', only).group(1)  # type: ignore[union-attr]
    report = client.get(f"/runs/{run_id}/report")
    assert report.status_code == 200
    assert report.text.splitlines()[1] == "grades_2026.csv,3,grade,x,not an integer"
