"""Inference reads what real files hold: missing-value markers, dates in local forms, rare
values far from the top, and keys that are unique over every row read."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop import infer_keys, infer_read
from batchdrop.config import Config, parse_config
from batchdrop.errors import DataError
from batchdrop.infer import infer_config
from batchdrop.reader import header_positions
from batchdrop.schema import RowConverter


def infer(path: Path) -> tuple[dict[str, Any], list[str], str]:
    text, notes = infer_config(str(path))
    cfg = yaml.safe_load(text)
    parse_config(cfg, environ={})  # what init writes is a valid config
    return cfg, notes, text


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def types(cfg: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {f["name"]: (f["type"], f.get("format", "default")) for f in cfg["schema"]["fields"]}


def convert(cfg: dict[str, Any], path: Path) -> list[tuple[Any, ...] | None]:
    """Every data row of ``path`` through the engine's converter for the inferred schema."""
    config: Config = parse_config(cfg, environ={})
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter=config.csv.delimiter) if r]
    header = [h.strip() for h in rows[0]]
    conv = RowConverter(config.schema_, header_positions(header, config, "x"), config.key)
    return [conv.convert(r) for r in rows[1:]]


def test_missing_value_markers_in_typed_columns_become_missing_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "id,count,price,when,flag,note\n"
        "a1,1,1.5,2024-01-02,true,first\n"
        "a2,NA,N/A,NULL,-,second\n"
        "a3,#N/A,None,,null,third\n"
        "a4,4,2.5,2024-01-03,false,NA\n",
    )
    cfg, notes, _ = infer(path)

    assert types(cfg) == {
        "id": ("string", "default"),
        "count": ("integer", "default"),
        "price": ("number", "default"),
        "when": ("date", "default"),
        "flag": ("boolean", "default"),
        "note": ("string", "default"),
    }
    assert set(cfg["schema"]["missingValues"]) == {
        "",
        "NA",
        "N/A",
        "NULL",
        "-",
        "#N/A",
        "None",
        "null",
    }
    rows = convert(cfg, path)
    assert None not in rows
    assert rows[1] == ("a2", None, None, None, None, "second")
    assert rows[3][5] is None  # NA in a text column of words is no value either
    assert any("missing values: " in n and "'NA'" in n for n in notes)


def test_a_marker_that_is_a_value_stays_a_value(tmp_path: Path) -> None:
    """NA is Namibia among country codes: it is not made a missing value, and a number column
    that uses NA for "no value" is read as text rather than losing the country."""
    path = write(
        tmp_path,
        "alpha2,country,population\n"
        "NZ,New Zealand,5\nNA,Namibia,3\nNO,Norway,NA\nNL,Netherlands,18\nNP,Nepal,30\n",
    )
    cfg, notes, text = infer(path)

    assert cfg["schema"]["missingValues"] == [""]
    assert types(cfg)["population"] == ("string", "default")
    assert cfg["table"]["partition_key"] == "alpha2"
    rows = convert(cfg, path)
    assert rows[1] == ("NA", "Namibia", "3") and rows[2] == ("NO", "Norway", "NA")
    assert any("'NA' is a value in 'alpha2'" in n for n in notes)
    assert "# 'NA' is a value in 'alpha2'" in text

    only_codes = write(tmp_path, "alpha2,population\nNZ,5\nNA,3\nNO,5\n", "codes.csv")
    cfg, _, _ = infer(only_codes)
    assert cfg["schema"]["missingValues"] == [""]
    assert types(cfg)["population"] == ("integer", "default")


def test_dates_in_common_forms_get_a_type_and_a_format(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "us,eu,dotted,text,stamp,seconds,pm\n"
        "01/31/2024,31/01/2024,31.01.2024,Jan 1 2000,2010/01/01 00:00,2010/01/01 00:00:00,"
        "3/4/2024 1:30 PM\n"
        "2/1/2024,1/2/2024,01.02.2024,Feb 29 2000,2010/01/01 23:59,2010/12/31 23:59:59,"
        "12/31/2024 11:05 AM\n",
    )
    cfg, notes, _ = infer(path)

    assert types(cfg) == {
        "us": ("date", "%m/%d/%Y"),
        "eu": ("date", "%d/%m/%Y"),
        "dotted": ("date", "%d.%m.%Y"),
        "text": ("date", "%b %d %Y"),
        "stamp": ("datetime", "%Y/%m/%d %H:%M"),
        "seconds": ("datetime", "%Y/%m/%d %H:%M:%S"),
        "pm": ("datetime", "%m/%d/%Y %I:%M %p"),
    }
    rows = convert(cfg, path)
    assert rows[0] is not None and rows[1] is not None
    assert str(rows[0][0]) == str(rows[0][1]) == str(rows[0][2]) == "2024-01-31"
    assert str(rows[1][3]) == "2000-02-29"
    assert str(rows[1][6]) == "2024-12-31 11:05:00"
    assert any("'text' is a date in the format %b %d %Y ('Jan 1 2000')" in n for n in notes)


def test_the_day_month_order_is_settled_across_the_file(tmp_path: Path) -> None:
    settled = write(
        tmp_path,
        "shipped,ordered\n03/04/2024,31/03/2024\n05/06/2024,04/06/2024\n",
    )
    cfg, notes, _ = infer(settled)
    assert types(cfg) == {"shipped": ("date", "%d/%m/%Y"), "ordered": ("date", "%d/%m/%Y")}
    assert convert(cfg, settled)[0] == (date(2024, 4, 3), date(2024, 3, 31))
    assert not any("is a guess" in n for n in notes)

    unsettled = write(tmp_path, "shipped\n03/04/2024\n05/06/2024\n", "open.csv")
    cfg, notes, text = infer(unsettled)
    assert types(cfg) == {"shipped": ("date", "%m/%d/%Y")}
    assert any(
        "no date in 'shipped' has a day over 12, so the order is a guess" in n for n in notes
    )
    assert "# no date in 'shipped' has a day over 12" in text


def test_rare_values_far_from_the_top_are_met(tmp_path: Path) -> None:
    """A decimal on row 29,000, a marker on row 29,500 and a word in the last row: each
    decides its column, although the first ten thousand rows agree on something else."""
    out = io.StringIO()
    out.write("id,amount,visits,seen\n")
    for i in range(30_000):
        amount = "12.5" if i == 29_000 else str(i)
        visits = "N/A" if i == 29_500 else "7"
        seen = "unknown" if i == 29_999 else "2024-05-01"
        out.write(f"r{i},{amount},{visits},{seen}\n")
    path = write(tmp_path, out.getvalue())
    cfg, notes, _ = infer(path)

    assert types(cfg)["amount"] == ("number", "default")
    assert types(cfg)["visits"] == ("integer", "default")
    assert types(cfg)["seen"] == ("string", "default")
    assert "N/A" in cfg["schema"]["missingValues"]
    assert None not in convert(cfg, path)
    assert "read all 30,000 rows of data.csv" in notes


def test_a_big_file_is_sampled_over_its_whole_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infer_read, "WHOLE_FILE_BYTES", 200_000)
    monkeypatch.setattr(infer_read, "HEAD_BYTES", 50_000)
    monkeypatch.setattr(infer_read, "SLICE_BYTES", 8_000)
    out = io.StringIO()
    out.write("id,amount\n")
    for i in range(60_000):  # about 900 kB; rows 40,000 to 45,000 hold decimals
        out.write(f"r{i},{i}.5\n" if 40_000 <= i < 45_000 else f"r{i},{i}\n")
    path = write(tmp_path, out.getvalue())
    cfg, notes, text = infer(path)

    assert types(cfg)["amount"] == ("number", "default")
    assert any("slices spread over the rest" in n for n in notes)
    # not every row was read: a repeated key rejects the file instead of passing unseen
    assert cfg["duplicates"] == "reject"
    assert "unique in the" in text and "rows sampled" in text
    assert "constraints" not in str(cfg["schema"]["fields"])  # required is not guessed


def test_a_compressed_sample_is_read_as_gzip(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "orders.csv.gz"
    path.write_bytes(gzip.compress(b"order_id,total\nO-1,5\nO-2,7.25\n"))
    cfg, _, _ = infer(path)
    assert types(cfg) == {"order_id": ("string", "default"), "total": ("number", "default")}
    assert cfg["suffix"] == ".csv" and cfg["duplicates"] == "last_wins"


def test_a_key_unique_over_every_row_keeps_last_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name,customer_id,city\nAnn,C1,Oslo\nBob,C2,Oslo\nCyd,C3,Rome\n",
    )
    cfg, notes, _ = infer(path)
    # an identifier-like name wins over a text column that is unique too
    assert cfg["table"]["partition_key"] == "customer_id" and "sort_key" not in cfg["table"]
    assert cfg["duplicates"] == "last_wins"
    assert "CHECK THE KEY: guessed customer_id (unique in all 3 rows)" in notes


def test_a_key_of_three_columns_is_a_partition_key_and_a_composite_sort_key(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    out.write("shop,day,product,qty\n")
    for shop in ("north", "south", "east"):
        for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
            for product in ("apple", "pear", "plum", "fig", "kiwi"):
                out.write(f"{shop},{day},{product},3\n")
    path = write(tmp_path, out.getvalue())
    cfg, notes, text = infer(path)

    assert cfg["table"]["partition_key"] == "shop"
    assert cfg["table"]["sort_key"] == ["product", "day"]
    assert "sort_key: [product, day]" in text
    assert cfg["duplicates"] == "last_wins"
    assert "CHECK THE KEY: guessed shop + product + day (unique in all 60 rows)" in notes
    config = parse_config(cfg, environ={})  # loads as written
    assert config.key == ("shop", "product", "day")
    assert config.table.physical_key == ("shop", "product#day")


def test_no_unique_set_rejects_duplicates_and_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, "year,month,amount\n2013,1,5.5\n2013,1,6.5\n2013,2,7.5\n2013,2,8.5\n")
    cfg, notes, _ = infer(path)
    assert cfg["table"]["partition_key"] == "month"
    assert cfg["duplicates"] == "reject"
    assert "no set of up to 4 columns identifies a row" in " ".join(notes)


def test_delimiters_are_told_apart_by_parsing(tmp_path: Path) -> None:
    semi = write(
        tmp_path,
        'id;amount;city\n1;"1,5";"Paris, FR"\n2;"2,25";"Lyon, FR"\n',
        "semi.csv",
    )
    cfg, notes, _ = infer(semi)
    assert cfg["csv"] == {"delimiter": ";"}
    assert [f["name"] for f in cfg["schema"]["fields"]] == ["id", "amount", "city"]
    assert "the delimiter is ';'" in notes

    tab = write(tmp_path, "id\tnote\n1\ta, b\n2\tc; d\n", "tab.tsv")
    cfg, _, _ = infer(tab)
    assert cfg["csv"] == {"delimiter": "\t"} and cfg["suffix"] == ".tsv"


def test_utf16_is_read_and_its_encoding_written(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes("id,name\n1,Zoë\n".encode("utf-16"))
    cfg, notes, _ = infer(path)
    assert cfg["csv"] == {"encoding": "utf-16"}
    assert "the file is UTF-16 (it starts with a byte-order mark): csv.encoding: utf-16" in notes


def test_a_windows_1252_file_is_read_as_such(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("id,city\n1,Oslo\n2,Bogotá\n3,Zürich\n".encode("latin-1"))
    cfg, notes, _ = infer(path)
    assert cfg["csv"] == {"encoding": "cp1252"}
    assert any("the file is not UTF-8 (byte 0xe1 on line 3 is not)" in n for n in notes)
    assert not any("byte(s) are not valid" in n for n in notes)


def test_bytes_that_are_not_utf8_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes("id,city\n1,Zürich\n2,Bogotá\n".encode() + b"3,caf\xe9\n")
    cfg, notes, _ = infer(path)
    assert "csv" not in cfg
    assert "1 byte(s) are not valid UTF-8 (the first at line 4): a load rejects those rows" in notes


def test_rows_of_the_wrong_width_are_reported_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'id,text\n1,"two\nlines"\n2,x,extra\n3,y\n')
    cfg, notes, _ = infer(path)
    assert "1 row(s) are not 2 well-formed fields (the first at line 4)" in " ".join(notes)
    assert cfg["table"]["partition_key"] == "id"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("id,,name", "the header has no name for column 2"),
        ("id,name,name", "the header names 'name' more than once"),
    ],
)
def test_a_header_the_engine_would_refuse_is_refused(
    tmp_path: Path, header: str, message: str
) -> None:
    path = write(tmp_path, f"{header}\n1,2,3\n")
    with pytest.raises(DataError, match=message):
        infer_config(str(path))


def test_a_big_compressed_file_is_read_up_to_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    monkeypatch.setattr(infer_read, "WHOLE_FILE_BYTES", 100_000)
    body = "".join(f"r{i},{i}\n" for i in range(50_000))
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(("id,n\n" + body).encode()))
    cfg, notes, _ = infer(path)
    assert any(n.startswith("read the first 0 MB (uncompressed) of big.csv.gz") for n in notes)
    read = next(n for n in notes if n.startswith("read the first"))
    rows = int(read.split(": ")[1].split()[0].replace(",", ""))
    assert 5_000 < rows < 50_000
    assert cfg["duplicates"] == "reject"  # unique in what was read, not proven for the rest


def test_an_integer_unique_by_itself_is_the_key_when_nothing_else_is(tmp_path: Path) -> None:
    cfg, notes, _ = infer(write(tmp_path, "n,value\n1,2.5\n2,3.5\n3,2.5\n"))
    assert cfg["table"]["partition_key"] == "n" and cfg["duplicates"] == "last_wins"
    assert "CHECK THE KEY: guessed n (unique in all 3 rows)" in notes


def test_a_header_without_rows_says_there_was_nothing_to_learn(tmp_path: Path) -> None:
    cfg, notes, _ = infer(write(tmp_path, "id,amount\n"))
    assert types(cfg) == {"id": ("string", "default"), "amount": ("string", "default")}
    assert "the file has no data rows to learn from" in notes[-1]


def test_past_the_rows_a_key_search_holds_the_key_is_not_called_proven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infer_keys, "KEY_ROWS", 1_000)
    monkeypatch.setattr(infer_keys, "KEY_CELLS", 1_000)
    path = write(tmp_path, "id,n\n" + "".join(f"r{i},{i % 7}\n" for i in range(5_000)))
    cfg, notes, _ = infer(path)
    assert "read all 5,000 rows of data.csv" in notes
    assert "CHECK THE KEY: guessed id (unique in the 1,000 rows sampled)" in notes
    assert cfg["duplicates"] == "reject"
