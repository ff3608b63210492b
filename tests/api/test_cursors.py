"""Tampered cursors and odd parameters: every answer is a page (200) or a 400 with a JSON
``detail``, never a 500, on every backend and for every type of sort key.

A cursor is decoded, its JSON edited in many ways (the position, the query it is bound to, the
envelope), and encoded again; raw garbage and seeded random corruption of the real cursor come
on top.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from .conftest import BIG_PARTITION, Api

SEED = 20261127


def encode(text: str | bytes) -> str:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(cursor: str) -> dict[str, Any]:
    payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert isinstance(payload, dict)
    return payload


# Positions a cursor could be edited to carry, as JSON text (NaN and deep nesting included,
# which Python's json reads).
POSITIONS = [
    *("[]", "[1]", '["x"]', '[[["Course 01"]]]', "{}", '{"a": 1}', '{"#": "dec"}'),
    *('{"#": "dec", "v": "NaN"}', '{"#": "dec", "v": "sNaN"}', '{"#": "dec", "v": "-Infinity"}'),
    *('{"#": "dec", "v": "1e999999999"}', '{"#": "dec", "v": "١٢٣"}', '{"#": "dec", "v": "7.5"}'),
    *('{"#": "dec", "v": "x"}', '{"#": "dec", "v": 5}', '{"#": "dec", "v": "1", "x": 2}'),
    *('{"#": "dt", "v": "2026-01-01T00:00:00"}', '{"#": "dt", "v": "nope"}'),
    *('{"#": "date", "v": "2026-01-11"}', '{"#": "date", "v": "2026-13-01"}'),
    *('{"#": "tuple", "v": ["S1", 3]}', '{"#": "tuple", "v": []}', '{"#": "tuple", "v": 1}'),
    *('{"#": "dict", "v": [["at", 3]]}', '{"#": "dict", "v": [[["at"], 3]]}'),
    *('{"#": "dict", "v": [[1]]}', '{"#": "bytes", "v": "AAEC"}', '{"#": "bytes", "v": "!"}'),
    *('{"#": "zzz", "v": 1}', '{"#": ["dec"], "v": "1"}'),
    *("null", "true", "false", "0", "-0", "3", "-5", "7", "1.5", "-0.0", "1e308", "1e999"),
    *("NaN", "Infinity", "-Infinity", "9223372036854775807", "9223372036854775808"),
    *("100000000000000000000", "-100000000000000000000", "1" + "0" * 4000),
    *('""', '"x"', '"abc"', '"١٢٣"', '"１２３"', '"1_000"', '" 7"', '"7 "', '"+7"', '"007"'),
    *('"NaN"', '"Infinity"', '"1e999999"', '"1E+3"', '"0x10"', '"\\u0000"', '"\\ud800"'),
    *('"\\udfff x"', '"\\u00e9"', '"' + "9" * 30 + '"', '"' + "9" * 50 + '.5"'),
    *('"2026-02-30"', '"2026-01-01T25:00"', '"2026-01-01T08:00:00+99:99"', '"٢٠٢٦-٠١-١١"'),
    *('"2026-01-11"', '"2026-01-01T08:30:00"', '"2026-01-01T08:30:00Z"', '"Course 01"'),
    *('"Course 99"', '"' + "x" * 2000 + '"', '"' + "é" * 10_000 + '"'),
    "[" * 5000 + "]" * 5000,
    '{"#": "tuple", "v": [' * 400 + "]}" * 400,
]

# Whole cursors that are not base64url of a JSON object this API wrote.
GARBAGE = [
    *("", " ", "=", "====", "a", "ab", "abc", "!!!!", "é", "\x00", "%00", "eyJ", "e30"),
    *("+/+/", "A" * 30_000, "eyJ2Ijox" * 200, encode(b"\xff\xfe\x00"), encode(b"\xed\xa0\x80")),
    *(encode("not json"), encode("[]"), encode("null"), encode("1"), encode('"x"')),
    *(encode('{"v": 1}'), encode('{"v": 1, "q": 1, "a": 1}'), encode("[" * 5000)),
    encode("\ufeff" + json.dumps({"v": 1, "q": "[]", "a": "x"})),
]


def envelopes(real: dict[str, Any]) -> Iterator[str]:
    """The real cursor's JSON with its envelope edited."""
    q, a = real["q"], json.dumps(real["a"])
    yield from (json.dumps({**real, "v": v}) for v in (0, 2, "1", True, None, 1.0, [1]))
    yield from (json.dumps({**real, "q": v}) for v in (None, 1, "", "[]", q + " ", [q]))
    yield json.dumps({"v": 1, "q": q})
    yield json.dumps({"v": 1, "a": real["a"]})
    yield json.dumps({**real, "extra": "x"})
    yield json.dumps([real])
    for partition in ('"S2"', "1", '{"#": "dec", "v": "NaN"}', "[]", "null"):
        other = json.dumps([json.loads(partition), None])
        yield json.dumps({"v": 1, "q": other, "a": real["a"]})
    yield f'{{"v": 1, "q": {json.dumps(q)}, "a": {a}, "a": {a}}}'


def positions(real: dict[str, Any]) -> Iterator[str]:
    """The real cursor's JSON with its position replaced."""
    head = f'{{"v": 1, "q": {json.dumps(real["q"])}, "a": '
    for position in POSITIONS:
        yield head + position + "}"


def corrupted(cursor: str, rng: random.Random, count: int) -> Iterator[str]:
    """The real cursor (and its JSON) with random bytes changed, dropped or added."""
    text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    alphabet = b'{}[]":,0123456789.eE+-#\\ azqvd\x00\xff'
    for _ in range(count):
        raw = bytearray(text)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(raw))
            op = rng.choice(("set", "drop", "add"))
            if op == "set":
                raw[i] = rng.choice(alphabet)
            elif op == "drop":
                del raw[i]
            else:
                raw.insert(i, rng.choice(alphabet))
        yield encode(bytes(raw))
        chars = list(cursor)
        chars[rng.randrange(len(chars))] = rng.choice("AZaz09-_=+/.!é")
        yield "".join(chars)


def problems(api: Api, url: str, cursors: Iterator[tuple[str, str]], **params: str) -> str:
    """Every answer that is neither a page nor a 400 with a JSON detail about the cursor."""
    found = []
    for label, cursor in cursors:
        try:
            r = api.get(url, params={**params, "cursor": cursor})
        except Exception as e:  # the app raised: a 500 behind a server
            found.append(f"{label[:90]!r}: raised {type(e).__name__}: {str(e)[:100]}")
            continue
        if not answered_cleanly(r, "cursor"):
            found.append(f"{label[:90]!r}: {r.status_code} {r.text[:100]}")
    return "\n".join(found)


def answered_cleanly(r: httpx.Response, about: str) -> bool:
    if r.headers.get("content-type") != "application/json":
        return False
    body = r.json()
    if r.status_code == 200:
        return isinstance(body, dict) and {"items", "count", "next_cursor"} <= set(body)
    return (
        r.status_code == 400
        and set(body) == {"detail"}
        and isinstance(body["detail"], str)
        and about in body["detail"]
    )


def tampered(cursor: str, seed: int) -> Iterator[tuple[str, str]]:
    """(what was done, the cursor) for each way of editing ``cursor``."""
    real = decode(cursor)
    yield "the real cursor", cursor
    for text in [*envelopes(real), *positions(real)]:
        yield text, encode(text)
    for garbage in GARBAGE:
        yield f"garbage {garbage}", garbage
    for i, bad in enumerate(corrupted(cursor, random.Random(seed), 40)):
        yield f"random corruption {i}: {bad}", bad


def test_tampered_cursors_on_a_string_sort_key(students):
    _, api = students
    url = f"/items/{BIG_PARTITION}"
    for params in ({}, {"begins_with": "Course 0"}):
        cursor = api.get(url, params={"limit": 2, **params}).json()["next_cursor"]
        assert cursor
        assert not (found := problems(api, url, tampered(cursor, SEED), limit="2", **params)), found


def test_tampered_cursors_on_typed_sort_keys(sorted_by):
    sort_type, _, api = sorted_by
    first = api.get("/items/S1", params={"limit": 3})
    assert first.status_code == 200 and first.json()["count"] == 3
    cursor = first.json()["next_cursor"]
    # the real cursor still works, on to the end
    rest = api.get("/items/S1", params={"limit": 10, "cursor": cursor}).json()
    assert rest["count"] == 4 and rest["next_cursor"] is None
    found = problems(api, "/items/S1", tampered(cursor, SEED + len(sort_type)), limit="3")
    assert not found, found


# Positions of the wrong type for each kind of sort key.
MISFITS = {
    "integer": [
        *('"abc"', '"١٢٣"', '"1_000"', '"1.5"', "[3]", '{"#": "dec", "v": "3"}', "true"),
        *("1.5", '""'),
    ],
    "number": ['"NaN"', '"Infinity"', '"-Infinity"', '"１２"', '"1_0"', '"0x10"', "7", "7.5"],
    "date": ['"2026-13-01"', '"٢٠٢٦-٠١-١١"', '"2026-1-11"', "20260111", '{"#": "date", "v": "x"}'],
    "datetime": ['"2026-01-01T25:00"', '"2026-01-01T08:00:00+99:99"', '"tomorrow"', "1"],
}


#: integer positions past what DynamoDB's numbers hold (38 digits): SQLite holds any integer
PAST_38_DIGITS = ["1" * 41, "-" + "9" * 39, '"' + "1" * 41 + '"']


def test_a_position_that_does_not_fit_the_key_is_400(sorted_by, request):
    sort_type, _, api = sorted_by
    backend = request.node.callspec.params["sorted_by"][0]
    cursor = api.get("/items/S1", params={"limit": 3}).json()["next_cursor"]
    q = json.dumps(decode(cursor)["q"])
    misfits = list(MISFITS[sort_type])
    if sort_type == "integer" and backend == "dynamodb":
        misfits += PAST_38_DIGITS
    elif sort_type == "integer":
        for position in PAST_38_DIGITS:
            forged = encode(f'{{"v": 1, "q": {q}, "a": {position}}}')
            r = api.get("/items/S1", params={"cursor": forged})
            assert r.status_code == 200, (position, r.text)  # a place SQLite could hold
    for position in misfits:
        forged = encode(f'{{"v": 1, "q": {q}, "a": {position}}}')
        r = api.get("/items/S1", params={"cursor": forged})
        assert r.status_code == 400, (position, r.text)
        assert r.json() == {
            "detail": "cursor is not valid: pass the next_cursor of the previous page unchanged"
        }, position


def test_an_edited_position_that_fits_the_key_is_a_page(sorted_by):
    """A cursor is only a position: one moved to another value of the right type still works."""
    sort_type, _, api = sorted_by
    cursor = api.get("/items/S1", params={"limit": 3}).json()["next_cursor"]
    moved = {
        "integer": "7",
        "number": '"3"',
        "date": '"2026-04-14"',
        "datetime": '"2026-01-04T04:30:00"',
    }[sort_type]
    forged = encode(f'{{"v": 1, "q": {json.dumps(decode(cursor)["q"])}, "a": {moved}}}')
    r = api.get("/items/S1", params={"cursor": forged})
    assert r.status_code == 200, r.text
    assert r.json()["count"] >= 1  # (SQLite orders a number sort key as text)


ODD_NUMBERS = ["NaN", "nan", "inf", "-Infinity", "1e3", "1.0", "1_0", " 10", "10 ", "0x10", "+10"]
ODD_NUMBERS += ["١٠", "１０", "٣", "9" * 30, "9" * 5000, "-1", "true", "1e999999", "\x00", "1\n"]


def test_odd_limits_are_400(students):
    _, api = students
    for url in ("/items/A10002", "/runs"):
        for limit in [*ODD_NUMBERS, ""]:
            r = api.get(url, params={"limit": limit})
            assert r.status_code == 400, (url, limit, r.text)
            assert r.json()["detail"].startswith("query parameter 'limit'"), r.json()


def test_odd_integer_keys_are_400_or_not_found(keyed_items):
    _, api = keyed_items
    for text in [*ODD_NUMBERS, "1" * 39, "1" * 41, "1" + "0" * 40, "-" + "9" * 25]:
        r = api.get("/items/" + quote(text, safe=""))
        assert answered_cleanly(r, "partition key"), (text, r.status_code, r.text)
        if r.status_code == 200:
            assert r.json()["items"] == [], text
    for text in ("١٢", "１２", "1_2", "NaN", " 12"):
        r = api.get("/items/" + quote(text))
        assert r.status_code == 400, (text, r.text)
        assert r.json()["detail"] == f"partition key 'id': not an integer (got {text!r})"
    r = api.get("/items/" + "9" * 5000)  # more digits than Python converts
    assert r.json()["detail"].startswith("partition key 'id': not a valid integer (got '999")


def test_odd_typed_sort_keys_and_prefixes(sorted_by):
    sort_type, _, api = sorted_by
    odd = [*ODD_NUMBERS, "1" * 41, "2026-02-30", "٢٠٢٦-٠١-١١", "2026-01-01T08:30:00+99:99"]
    for text in odd:
        r = api.get("/items/S1/" + quote(text, safe=""))
        assert r.status_code in (200, 400, 404), (text, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        if r.status_code != 200:  # (200: a number sort key holds 1E+3)
            assert set(r.json()) == {"detail"}, r.text
    for prefix in ("1", "NaN", "é", "\x00"):
        r = api.get("/items/S1", params={"begins_with": prefix})
        if sort_type in ("date", "datetime"):  # begins_with reads their ISO 8601 text
            assert r.status_code == 200 and r.json()["items"] == [], r.text
            continue
        assert r.status_code == 400, r.text
        article = "an" if sort_type == "integer" else "a"
        assert r.json()["detail"] == (
            f"begins_with: the sort key 'at' is {article} {sort_type}; "
            "begins_with needs a string, date or datetime sort key"
        )


def test_odd_prefixes_and_run_positions(students):
    _, api = students
    for prefix in ("", "\x00", "é" * 600, "%", "Course 0" * 200, "١"):
        r = api.get(f"/items/{BIG_PARTITION}", params={"begins_with": prefix})
        assert r.status_code == 200, (prefix[:20], r.text)
    for before in ("\x00", "é" * 128, "9" * 128, "NaN", "[]"):
        r = api.get("/runs", params={"before": before})
        assert r.status_code == 200, r.text
        assert isinstance(r.json()["runs"], list)
    # longer than any run id, and than DynamoDB takes in a key condition
    r = api.get("/runs", params={"before": "é" * 600})
    assert r.status_code == 400
    assert r.json()["detail"].startswith(
        "query parameter 'before': String should have at most 128 characters"
    )
    r = api.get("/runs/" + "é" * 1200)
    assert r.status_code == 404
    assert r.json()["detail"].startswith("no run with id 'ééé")


@pytest.mark.parametrize("students", ["dynamodb"], indirect=True)
def test_a_key_dynamodb_refuses_is_a_400_not_a_500(students):
    """Keys are checked before they are sent, but a limit DynamoDB adds later (its
    ValidationException) is still the request's fault: a 400 naming the refusal."""
    from botocore.stub import Stubber

    from batchdrop.adapters import Backends
    from batchdrop.api.app import create_app

    ds, _ = students
    backends = Backends(ds.config)
    api = Api(create_app(ds.config, backends))
    refusal = "One or more parameter values were invalid: Size of hashkey has exceeded the limit"
    with Stubber(backends.table.client) as stub:  # type: ignore[attr-defined]
        stub.add_client_error("query", "ValidationException", refusal, 400)
        stub.add_client_error("get_item", "ValidationException", refusal, 400)
        for url in ("/items/A10002", "/items/A10002/Chemistry"):
            r = api.get(url)
            assert r.status_code == 400, r.text
            detail = r.json()["detail"]
            assert detail.startswith("the backend refused this request: DynamoDB refused to ")
            assert refusal in detail


def test_dynamodb_numbers_are_storable_keys_only_within_38_digits(tmp_path):
    from batchdrop.api.keys import Keys

    from .conftest import ITEM_FIELDS, make_config

    keys = Keys(make_config("dynamodb", tmp_path, ITEM_FIELDS, ("id",), "t"))
    assert keys.storable(int("1" * 38), "partition")
    assert keys.storable(10**100, "partition")  # one significant digit
    assert not keys.storable(int("1" * 39), "partition")
    assert not keys.storable(Decimal("1" * 30 + "." + "1" * 9), "partition")
    assert not keys.storable(Decimal("1E+126"), "partition")
    assert not keys.storable("\ud800", "partition")  # JSON can carry a lone surrogate
    local = Keys(make_config("sqlite", tmp_path, ITEM_FIELDS, ("id",), "t"))
    # past 64 bits SQLite keeps an integer as its exact text: any integer is a key there
    assert local.storable(2**63 - 1, "partition") and local.storable(10**100, "partition")


def test_refused_parameters_are_not_offered_in_the_openapi_document(sorted_by):
    sort_type, _, api = sorted_by  # begins_with needs a sort key stored as text
    op = api.get("/openapi.json").json()["paths"]["/items/{partition}"]["get"]
    offered = {"partition", "limit", "cursor"}
    if sort_type in ("date", "datetime"):
        offered.add("begins_with")
    assert {p["name"] for p in op["parameters"]} == offered


def test_a_table_without_a_sort_key_offers_no_cursor_and_no_prefix(keyed_items):
    _, api = keyed_items
    op = api.get("/openapi.json").json()["paths"]["/items/{partition}"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"partition", "limit"}
