"""The run ledger over HTTP: the same cases on SQLite and on DynamoDB."""

from __future__ import annotations

from urllib.parse import quote


def test_runs_newest_first_with_receipts(students):
    ds, api = students
    r = api.get("/runs")
    assert r.status_code == 200
    body = r.json()
    ours = [run for run in body["runs"] if run["run_id"] in ds.run_ids.values()]
    assert {run["file"] for run in ours} == {"bad-header.csv", "some-bad.csv", "students.csv"}
    # newest first (run ids only tell the second a run started in, so ties are unordered)
    started = [run["started_at"][:19] for run in body["runs"]]
    assert started == sorted(started, reverse=True)
    by_file = {run["file"]: run for run in ours}
    good = by_file["students.csv"]
    assert good["status"] == "loaded" and good["state"] == "done"
    assert good["rows_read"] == good["rows_loaded"] == 13
    assert good["receipt"]["run_id"] == good["run_id"]
    assert good["links"] == {
        "self": f"/runs/{quote(good['run_id'], safe='')}",
        "rejected_rows_report": None,
    }
    assert by_file["bad-header.csv"]["status"] == "rejected"
    assert "bad header" in by_file["bad-header.csv"]["reason"]


def test_a_run_with_rejected_rows_links_its_report(students):
    ds, api = students
    run_id = ds.run_ids["some-bad.csv"]
    r = api.get(f"/runs/{run_id}")
    assert r.status_code == 200
    run = r.json()
    assert run["status"] == "loaded_with_rejects"
    assert (run["rows_read"], run["rows_loaded"], run["rows_rejected"]) == (2, 1, 1)
    report = run["rejected_rows_report"]
    assert report and report.endswith(".csv")
    assert run["links"]["rejected_rows_report"] == report
    assert run["receipt"]["errors"][0]["column"] == "credits"


def test_runs_filtered_by_status(students):
    ds, api = students
    r = api.get("/runs", params={"status": "loaded_with_rejects"})
    assert r.status_code == 200
    runs = r.json()["runs"]
    assert runs and {run["status"] for run in runs} == {"loaded_with_rejects"}
    assert ds.run_ids["some-bad.csv"] in [run["run_id"] for run in runs]


def test_runs_page_with_next_before(students):
    ds, api = students
    first = api.get("/runs", params={"limit": 2}).json()
    assert first["count"] == 2 and first["next_before"] == first["runs"][-1]["run_id"]
    rest = api.get("/runs", params={"limit": 2, "before": first["next_before"]}).json()
    ids = [run["run_id"] for run in first["runs"] + rest["runs"]]
    assert len(ids) == len(set(ids))
    assert set(ds.run_ids.values()) <= set(ids)


def test_unknown_run_is_404(students):
    _, api = students
    r = api.get("/runs/20000101T000000Z-000000")
    assert r.status_code == 404
    assert r.json() == {"detail": "no run with id '20000101T000000Z-000000'"}


def test_bad_status_is_400_naming_the_allowed_ones(students):
    _, api = students
    r = api.get("/runs", params={"status": "exploded"})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("query parameter 'status'")
    assert "'loaded_with_rejects'" in detail and "(got 'exploded')" in detail
