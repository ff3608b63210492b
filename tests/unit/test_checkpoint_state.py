"""What a checkpoint keeps comes back as it was, in another process too."""

from __future__ import annotations

import subprocess
import sys
from array import array
from datetime import UTC, date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from batchdrop.checkpoint import Delta, Position, key_hasher
from batchdrop.errors import RowError
from batchdrop.report import RejectedRowsReport


def test_a_delta_comes_back_with_every_value_of_its_type() -> None:
    held = [
        (7, ("A1", Decimal("1.50"), date(2026, 1, 2), None, True, 3, float("inf"), "é\u2028")),
        (9, ("A2", Decimal("-0"), datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "")),
    ]
    d = Delta(
        "write",
        3,
        Position(10, 2),
        Position(99, 20),
        snapshot={"read": 5, "errors": [{"line": 4, "reason": "x"}]},
        hashes=array("q", [1, -2, 2**63 - 1]),
        bad=array("q", [4, 5]),
        report=b"file,line\r\nx.csv,4\r\n",
        held=held,
        results={"repeats": 2},
        repeated=array("q", [-(2**63)]),
    )
    back = Delta.from_bytes(d.to_bytes())
    assert back == d
    assert [tuple(map(type, row)) for _, row in back.held] == [
        tuple(map(type, row)) for _, row in held
    ]


def test_a_state_object_is_data_not_code() -> None:
    text = Delta("check", 0, Position(), Position()).to_bytes()
    assert b"pickle" not in text and text.split(b"\n", 1)[0].startswith(b"{")


def test_equal_keys_hash_alike_and_the_hash_is_the_same_in_another_process() -> None:
    salt = bytes(range(16))
    h = key_hasher(salt)
    keys = ["A10001", ("A10001", Decimal("1.50")), ("A10001", Decimal("1.5")), Decimal("1E+2")]
    here = list(h(keys))
    assert here[1] == here[2]  # 1.50 and 1.5 are one key to the table
    assert list(h([Decimal("100")])) == [here[3]]
    assert list(key_hasher(bytes(16))(keys[:1])) != here[:1]  # keyed: another salt, other hashes
    code = (
        "from decimal import Decimal; from batchdrop.checkpoint import key_hasher; "
        f"print(list(key_hasher({salt!r})({keys!r})))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        assert out.strip() == str(here)


@given(
    st.lists(
        st.one_of(
            st.text(),
            st.tuples(st.text(), st.text()),
            st.tuples(st.text(), st.decimals(allow_nan=False, allow_infinity=False)),
            st.integers(),
            st.decimals(allow_nan=False, allow_infinity=False),
            st.dates(),
        ),
        max_size=20,
    )
)
@settings(max_examples=300, deadline=None)
def test_a_key_hash_is_blake2b_keyed_by_the_salt_of_the_keys_canonical_text(keys: list) -> None:
    """The definition checkpoints depend on: a run paused by one version of the engine is
    finished by the next, so the hash of a key must never change."""
    from hashlib import blake2b

    from batchdrop.schema import key_text

    salt = b"batchdrop-salt-0"

    def defined(key: object) -> int:
        text = "\x1f".join(map(key_text, key)) if isinstance(key, tuple) else key_text(key)
        digest = blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8, key=salt)
        return int.from_bytes(digest.digest(), "little", signed=True)

    assert list(key_hasher(salt)(keys)) == [defined(k) for k in keys]


def test_a_report_rebuilt_from_its_tails_is_the_same_file(tmp_path: object) -> None:
    first = RejectedRowsReport("f.csv")
    first.add(RowError(2, "a", "x", "bad"))
    part1 = first.tail()
    mark = first.mark()
    first.add(RowError(5, "b", "y", "worse"))
    first.rewind(mark)  # a segment read again drops what it had added
    first.add(RowError(5, "b", "y", "worse"))
    part2 = first.tail()
    assert first.tail() == b""
    again = RejectedRowsReport("f.csv")
    again.extend(part1)
    again.extend(part2)
    again.load(first.saved())
    again.add(RowError(9, "c", "z", "worst"))
    first.add(RowError(9, "c", "z", "worst"))
    with open(first.path() or "", "rb") as a, open(again.path() or "", "rb") as b:
        assert a.read() == b.read()
    assert again.count == first.count == 3
    first.discard()
    again.discard()
