"""The table's two access patterns over HTTP: the same cases on SQLite and on DynamoDB."""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import quote

import pytest

from .conftest import BIG_COURSES, BIG_PARTITION, EXACT, ODD_PARTITION, ODD_SORT, exact


def seg(text: str) -> str:
    """One path segment, with everything but unreserved characters percent-encoded."""
    return quote(text, safe="")


def test_health(students):
    _ds, api = students
    r = api.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["key"] == ["student_id", "course"]


def test_one_item_by_full_key(students):
    _, api = students
    r = api.get("/items/A10002/Modern%20Forensics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert exact(r) == {
        "student_id": "A10002",
        "fname": "Sherlock",
        "lname": "Holmes",
        "course": "Modern Forensics",
        "credits": Decimal(EXACT),
        "enrolled": "2026-09-02",
    }
    # the number is written as its digits, not as a rounded float
    assert EXACT in r.text


def test_missing_values_are_null_on_every_backend(students):
    _, api = students
    r = api.get("/items/A10002/Chemistry")
    assert r.status_code == 200
    assert r.json()["credits"] is None and r.json()["enrolled"] is None


@pytest.mark.parametrize(
    "url",
    [
        f"/items/{seg(ODD_PARTITION)}/{seg(ODD_SORT)}",
        # a '/' in the sort key may also be sent as is
        f"/items/{seg(ODD_PARTITION)}/{seg(ODD_SORT).replace('%2F', '/', 1)}",
    ],
)
def test_keys_with_spaces_slashes_plus_and_unicode(students, url):
    _, api = students
    r = api.get(url)
    assert r.status_code == 200, r.text
    assert r.json()["student_id"] == ODD_PARTITION
    assert r.json()["course"] == ODD_SORT


def test_plus_in_a_path_is_a_plus_not_a_space(students):
    _, api = students
    r = api.get("/items/" + seg(ODD_PARTITION).replace("%2B", "+"))
    assert r.status_code == 200
    assert [i["course"] for i in r.json()["items"]] == [ODD_SORT, "Opera"]


def test_absent_item_is_404_with_a_message(students):
    _, api = students
    r = api.get("/items/A10002/Astrology")
    assert r.status_code == 404
    assert r.json() == {"detail": "no item with student_id = 'A10002' and course = 'Astrology'"}


def test_partition_in_sort_key_order(students):
    _, api = students
    r = api.get("/items/A10002")
    assert r.status_code == 200
    body = r.json()
    assert [i["course"] for i in body["items"]] == [
        "Chemistry",
        "Modern Forensics",
        "Science Of Deduction",
    ]
    assert body["count"] == 3 and body["next_cursor"] is None


def test_unknown_partition_is_an_empty_page(students):
    _, api = students
    r = api.get("/items/Z99999")
    assert r.status_code == 200
    assert r.json() == {"items": [], "count": 0, "next_cursor": None}


def test_pages_follow_the_cursor_to_the_end(students):
    _, api = students
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = api.get(f"/items/{BIG_PARTITION}", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["count"] == len(body["items"]) <= 3
        seen += [i["course"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)  # base64url, safe in a URL as is
    assert seen == BIG_COURSES
    assert pages == 3


def test_begins_with_on_the_sort_key(students):
    _, api = students
    r = api.get("/items/A10002", params={"begins_with": "S"})
    assert [i["course"] for i in r.json()["items"]] == ["Science Of Deduction"]
    r = api.get(f"/items/{seg(ODD_PARTITION)}", params={"begins_with": "Forensics/Adv"})
    assert [i["course"] for i in r.json()["items"]] == [ODD_SORT]
    r = api.get(f"/items/{BIG_PARTITION}", params={"begins_with": "Course 0", "limit": 5})
    first = r.json()
    assert len(first["items"]) == 5 and first["next_cursor"]
    r = api.get(
        f"/items/{BIG_PARTITION}",
        params={"begins_with": "Course 0", "limit": 5, "cursor": first["next_cursor"]},
    )
    assert [i["course"] for i in r.json()["items"]] == BIG_COURSES[5:]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "query parameter 'limit': Input should be greater than or equal to 1"),
        ({"limit": "1001"}, "query parameter 'limit': Input should be less than or equal to 1000"),
        ({"limit": "ten"}, "query parameter 'limit': Input should be a valid integer"),
        ({"cursor": "not a cursor!"}, "cursor is not valid"),
        ({"cursor": "eyJ2IjoxfQ"}, "cursor is not valid"),  # base64url of {"v":1}
    ],
)
def test_bad_parameters_are_400_with_a_clear_message(students, params, message):
    _, api = students
    r = api.get("/items/A10002", params=params)
    assert r.status_code == 400
    assert r.json()["detail"].startswith(message), r.json()


def test_a_cursor_only_continues_its_own_query(students):
    _, api = students
    cursor = api.get(f"/items/{BIG_PARTITION}", params={"limit": 2}).json()["next_cursor"]
    for url, params in [("/items/A10002", {}), (f"/items/{BIG_PARTITION}", {"begins_with": "C"})]:
        r = api.get(url, params={"cursor": cursor, **params})
        assert r.status_code == 400
        assert r.json()["detail"].startswith("cursor belongs to another query")


def test_empty_sort_key_is_400(students):
    _, api = students
    r = api.get("/items/A10002/")
    assert r.status_code == 400
    assert r.json() == {"detail": "the sort key 'course' is empty"}


def test_a_key_too_long_to_store_is_not_found(students):
    _, api = students
    r = api.get("/items/A10002/" + "x" * 1500)
    assert r.status_code == 404
    r = api.get("/items/" + "y" * 3000)
    assert r.status_code == 200 and r.json()["items"] == []


# --- a table with an integer partition key and no sort key -------------------------------


def test_no_sort_key_partition_is_a_page_of_at_most_one(keyed_items):
    _, api = keyed_items
    r = api.get("/items/42")
    assert r.status_code == 200
    assert exact(r) == {
        "items": [{"id": 42, "label": "answer", "price": Decimal("0.10")}],
        "count": 1,
        "next_cursor": None,
    }
    assert api.get("/items/+42").json()["items"][0]["label"] == "answer"
    assert api.get("/items/43").json() == {"items": [], "count": 0, "next_cursor": None}
    huge = "9" * 30  # beyond what either backend can hold as an integer key
    assert api.get(f"/items/{huge}").json()["items"] == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/items/abc", "partition key 'id': not an integer (got 'abc')"),
        ("/items/4/2", "partition key 'id': not an integer (got '4/2')"),
        ("/items/42?begins_with=a", "begins_with: this table has no sort key"),
        ("/items/42?cursor=abc", "cursor: this table has no sort key"),
    ],
)
def test_no_sort_key_bad_requests(keyed_items, url, message):
    _, api = keyed_items
    r = api.get(url)
    assert r.status_code == 400
    assert r.json()["detail"].startswith(message), r.json()


def test_no_sort_key_table_has_no_one_item_route(keyed_items):
    _ds, api = keyed_items
    paths = api.get("/openapi.json").json()["paths"]
    assert "/items/{partition}" in paths
    assert "/items/{partition}/{sort}" not in paths
