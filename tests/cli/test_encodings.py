"""A public file re-encoded as partners send it (Latin-1, Windows-1252, UTF-16 with its BOM in
both byte orders, gzip of UTF-16): `init --from` finds the encoding and writes it, and
`run --once` stores the same values as from the UTF-8 original."""

from __future__ import annotations

import gzip
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import bd
from .test_init_public import init_and_run, public_file, table

# rows with letters beyond ASCII (vega's airports.csv has none); the last one has characters
# Latin-1 lacks (curly quotes, a dash, the euro sign)
EXTRA = [
    "ZRH,Zürich Flughafen,Zürich,ZH,Switzerland,47.4647,8.5492",
    "CDG,Aéroport Charles-de-Gaulle,Roissy-en-France,IF,France,49.0097,2.5479",
    'XCP,"Café “Le Bourget” – parking 5 €",Pâris,IF,France,48.9,2.4',
]


def airports(latin1: bool = False) -> str:
    text = public_file("vega_datasets", "_data/airports.csv").read_text(encoding="utf-8")
    return text.rstrip("\n") + "\n" + "\n".join(EXTRA[:2] if latin1 else EXTRA) + "\n"


ENCODED = {
    "latin-1": lambda: airports(latin1=True).encode("latin-1"),
    "cp1252": lambda: airports().encode("cp1252"),
    "utf-16-le": lambda: b"\xff\xfe" + airports().encode("utf-16-le"),
    "utf-16-be": lambda: b"\xfe\xff" + airports().encode("utf-16-be"),
    "utf-16-gzip": lambda: gzip.compress(airports().encode("utf-16")),
}
# what init writes as csv.encoding: Windows-1252 reads every Latin-1 letter the same
DETECTED = {"latin-1": "cp1252", "cp1252": "cp1252"}


def stored(db: sqlite3.Connection, name: str) -> list[tuple[Any, ...]]:
    columns = "iata, name, city, state, country, latitude, longitude"
    return [tuple(r) for r in db.execute(f'select {columns} from "{name}" order by iata')]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[Any]]:
    """The UTF-8 original loaded with the config init wrote for it: that config, the rows."""
    work = tmp_path_factory.mktemp("utf8")
    (work / "src").mkdir()
    (work / "src" / "airports.csv").write_text(airports(), encoding="utf-8")
    cfg = init_and_run(work, work / "src" / "airports.csv")
    assert "csv" not in cfg and cfg["_receipt"]["status"] == "loaded"
    rows = stored(table(work, cfg), cfg["table"]["name"])
    assert ("ZRH", "Zürich Flughafen", "Zürich", "ZH", "Switzerland") in [r[:5] for r in rows]
    return cfg, rows


@pytest.mark.parametrize("encoding", list(ENCODED))
def test_init_finds_the_encoding_and_the_load_stores_the_same_values(
    tmp_path: Path, reference: tuple[dict[str, Any], list[Any]], encoding: str
) -> None:
    _, want = reference
    if encoding == "latin-1":
        want = [r for r in want if r[0] != "XCP"]
    name = "airports.csv.gz" if encoding.endswith("gzip") else "airports.csv"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / name).write_bytes(ENCODED[encoding]())
    cfg = init_and_run(tmp_path, tmp_path / "src" / name)

    assert cfg["csv"] == {"encoding": DETECTED.get(encoding, "utf-16")}
    receipt = cfg["_receipt"]
    assert receipt["status"] == "loaded", receipt
    assert receipt["rows_read"] == receipt["rows_loaded"] == len(want)
    assert stored(table(tmp_path, cfg), cfg["table"]["name"]) == want


def test_a_config_naming_latin1_loads_the_same_values(
    tmp_path: Path, reference: tuple[dict[str, Any], list[Any]]
) -> None:
    """The config of the UTF-8 original with csv.encoding: latin-1 set by hand (init would
    write cp1252, which reads these letters the same)."""
    cfg, want = reference
    want = [r for r in want if r[0] != "XCP"]
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    cfg["csv"] = {"encoding": "latin-1"}
    (tmp_path / "batchdrop.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "airports.csv").write_bytes(ENCODED["latin-1"]())
    r = bd("run", "--once", cwd=tmp_path)
    assert r.code == 0, r.err
    assert stored(table(tmp_path, cfg), cfg["table"]["name"]) == want


def test_a_utf16_file_under_the_default_encoding_is_rejected_with_the_setting(
    tmp_path: Path, reference: tuple[dict[str, Any], list[Any]]
) -> None:
    cfg = {k: v for k, v in reference[0].items() if not k.startswith("_")}
    (tmp_path / "batchdrop.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    (tmp_path / "inbound").mkdir()
    (tmp_path / "inbound" / "airports.csv").write_bytes(ENCODED["utf-16-le"]())
    r = bd("run", "--once", "--json", cwd=tmp_path)
    assert "the file starts with a UTF-16 byte-order mark: set csv.encoding: utf-16" in r.out
    assert "Traceback" not in r.err
    assert (tmp_path / "errors" / "airports.csv").exists()
