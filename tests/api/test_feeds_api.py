"""The query API of a deployment with feeds: each feed's table under /feeds/{feed}/, every
feed's runs at /runs, a clear 404 for a feed that does not exist."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.api import lambda_handler
from batchdrop.api.feeds import create_api
from batchdrop.config import parse_config
from batchdrop.router import Router

from .conftest import Api
from .test_lambda_and_serve import http_api_event


def settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "inbound": str(tmp_path / "in"),
        "archive": str(tmp_path / "archive"),
        "errors": str(tmp_path / "errors"),
        "notify": [],
        "feeds": [
            {
                "name": "students",
                "match": {"prefix": "students/"},
                "table": {
                    "url": f"sqlite:///{tmp_path}/a.db",
                    "name": "students",
                    "partition_key": "id",
                },
                "schema": {"fields": [{"name": "id"}, {"name": "name"}]},
            },
            {
                # a feed may be called "items": its routes are still told apart
                "name": "items",
                "match": {"glob": "grades_*.csv"},
                "table": {
                    "url": f"sqlite:///{tmp_path}/b.db",
                    "name": "grades",
                    "partition_key": "id",
                    "sort_key": "course",
                },
                "schema": {
                    "fields": [
                        {"name": "id"},
                        {"name": "course"},
                        {"name": "grade", "type": "integer"},
                    ]
                },
            },
        ],
    }


@pytest.fixture
def loaded(tmp_path: Path) -> dict[str, Any]:
    data = settings(tmp_path)
    (tmp_path / "in" / "students").mkdir(parents=True)
    (tmp_path / "in" / "students" / "s.csv").write_text("id,name\nA1,Ada\nA2,Alan\n")
    (tmp_path / "in" / "grades_1.csv").write_text("id,course,grade\nA1,maths/2,17\nA1,art,12\n")
    (tmp_path / "in" / "teachers.csv").write_text("id\nT1\n")
    router = Router(parse_config(copy.deepcopy(data), environ={}))
    for ref in router.pending():
        router.process_ref(ref)
    router.close()
    return data


def test_each_feeds_items_are_under_its_name(loaded: dict[str, Any]) -> None:
    api = Api(create_api(parse_config(copy.deepcopy(loaded), environ={})))

    one = api.get("/feeds/students/items/A2")
    assert one.status_code == 200, one.text
    assert one.json()["items"] == [{"id": "A2", "name": "Alan"}]
    part = api.get("/feeds/items/items/A1")
    assert [i["course"] for i in part.json()["items"]] == ["art", "maths/2"]
    item = api.get("/feeds/items/items/A1/maths/2")
    assert item.status_code == 200 and item.json() == {"id": "A1", "course": "maths/2", "grade": 17}
    assert api.get("/feeds/items/items/A1/history").status_code == 404

    unknown = api.get("/feeds/staff/items/A1")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no feed named 'staff'; the feeds: students, items"
    which = api.get("/items/A1")
    assert which.status_code == 404 and "/feeds/{feed}/items/A1" in which.json()["detail"]
    assert [f["name"] for f in api.get("/feeds").json()["feeds"]] == ["students", "items"]


def test_runs_name_their_feed_across_ledgers(loaded: dict[str, Any]) -> None:
    api = Api(create_api(parse_config(copy.deepcopy(loaded), environ={})))

    runs = api.get("/runs").json()["runs"]
    assert sorted((r["file"], r["feed"], r["status"]) for r in runs) == [
        ("grades_1.csv", "items", "loaded"),
        ("students/s.csv", "students", "loaded"),
        ("teachers.csv", None, "rejected"),
    ]
    only = api.get("/runs", params={"feed": "items"}).json()["runs"]
    assert [r["file"] for r in only] == ["grades_1.csv"]
    assert [r["file"] for r in api.get("/feeds/students/runs").json()["runs"]] == ["students/s.csv"]
    one = api.get(f"/runs/{only[0]['run_id']}")
    assert one.status_code == 200 and one.json()["feed"] == "items"
    assert api.get("/runs", params={"feed": "staff"}).status_code == 404


def test_the_feed_routes_on_lambda_behind_api_gateway(
    loaded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "batchdrop.yaml"
    path.write_text(yaml.safe_dump(loaded), encoding="utf-8")
    monkeypatch.setenv("BATCHDROP_CONFIG", str(path))
    lambda_handler.reset()
    try:
        reply = lambda_handler.handler(http_api_event("/feeds/items/items/A1/maths/2"), None)
        missing = lambda_handler.handler(http_api_event("/feeds/staff/items/A1"), None)
    finally:
        lambda_handler.reset()
    assert reply["statusCode"] == 200, reply
    assert json.loads(reply["body"])["grade"] == 17
    assert missing["statusCode"] == 404 and "no feed named 'staff'" in missing["body"]
