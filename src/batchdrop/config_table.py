"""The table's settings: where it is and its key, a column or a list of columns per part.

A composite key (a list) is one attribute in a key-value table, its columns' values joined by
``key_separator``; the columns are also kept as attributes of their own. What identifies a
row is every key column, partition then sort (``TableConfig.key``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class KeyColumns(tuple[str, ...]):
    """The columns that identify a row: the partition key's, then the sort key's. Also says
    which of them are joined into one attribute (and by what), so that a value holding the
    separator is refused where the row is converted."""

    separator: str
    joined: frozenset[str]

    def __new__(
        cls, names: Sequence[str], separator: str = "#", joined: frozenset[str] = frozenset()
    ) -> KeyColumns:
        self = super().__new__(cls, names)
        self.separator, self.joined = separator, joined
        return self


#: characters a key component that is not a string may hold in its text (-12, 1.5E+3, 08:30)
NON_STRING_KEY_CHARS = frozenset("-+.: ")


class TableConfig(Strict):
    url: str
    name: str | None = None
    #: one column, or a list of columns joined into one attribute (a composite key)
    partition_key: str | list[str]
    sort_key: str | list[str] | None = None
    #: what joins the values (and the names) of a composite key's columns
    key_separator: str = "#"
    #: the attribute name of a composite key (default: its columns joined by the separator)
    partition_key_name: str | None = None
    sort_key_name: str | None = None

    @field_validator("partition_key", "sort_key", mode="before")
    @classmethod
    def _one_is_a_string(cls, v: Any) -> Any:
        return v[0] if isinstance(v, list) and len(v) == 1 else v

    @field_validator("partition_key", "sort_key")
    @classmethod
    def _columns(cls, v: str | list[str] | None) -> str | list[str] | None:
        names = [v] if isinstance(v, str) else (v or [])
        if isinstance(v, list) and not v:
            raise ValueError("give a column name or a list of column names")
        for name in names:
            if not name.strip():
                raise ValueError("a key column name cannot be empty")
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} is listed twice")
        return v

    @field_validator("key_separator")
    @classmethod
    def _separator(cls, v: str) -> str:
        if not v or v.strip() != v or any(c.isalnum() or c == "_" for c in v):
            raise ValueError(
                f"{v!r} cannot join key values: use punctuation such as '#', '|' or '::' "
                "(no letters, digits, '_' or surrounding spaces)"
            )
        return v

    @model_validator(mode="after")
    def _key_names(self) -> TableConfig:
        overlap = [c for c in self.partition_columns if c in self.sort_columns]
        if overlap:
            raise ValueError(
                f"table.sort_key repeats {', '.join(map(repr, overlap))} of table.partition_key"
            )
        for role, columns, name in (
            ("partition_key", self.partition_columns, self.partition_key_name),
            ("sort_key", self.sort_columns, self.sort_key_name),
        ):
            if name is not None and len(columns) < 2:
                raise ValueError(
                    f"table.{role}_name names a composite {role}: give table.{role} as a list "
                    "of two or more columns, or leave the name out"
                )
            if name is not None and not name.strip():
                raise ValueError(f"table.{role}_name cannot be empty")
        return self

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith("dynamodb://")):
            raise ValueError("must be sqlite:///path/to/file.db or dynamodb://TABLE_NAME")
        return v

    @property
    def partition_columns(self) -> tuple[str, ...]:
        pk = self.partition_key
        return (pk,) if isinstance(pk, str) else tuple(pk)

    @property
    def sort_columns(self) -> tuple[str, ...]:
        sk = self.sort_key
        return () if sk is None else (sk,) if isinstance(sk, str) else tuple(sk)

    @property
    def key(self) -> KeyColumns:
        """What identifies a row: every key column, partition then sort."""
        parts = (self.partition_columns, self.sort_columns)
        joined = frozenset(c for cols in parts if len(cols) > 1 for c in cols)
        return KeyColumns(self.partition_columns + self.sort_columns, self.key_separator, joined)

    @property
    def physical_key(self) -> tuple[str, str | None]:
        """The names of the partition and sort attributes a key-value table stores: a single
        column's own name, or a composite key's joined name."""
        return (
            self._attribute(self.partition_columns, self.partition_key_name),
            self._attribute(self.sort_columns, self.sort_key_name) if self.sort_key else None,
        )

    def _attribute(self, columns: tuple[str, ...], name: str | None) -> str:
        if len(columns) == 1:
            return columns[0]
        return name or self.key_separator.join(columns)

    @property
    def composite(self) -> tuple[bool, bool]:
        """Whether the partition key, and the sort key, join several columns."""
        return len(self.partition_columns) > 1, len(self.sort_columns) > 1

    @property
    def table_name(self) -> str:
        if self.name:
            return self.name
        if self.url.startswith("dynamodb://"):
            return self.url.removeprefix("dynamodb://").strip("/")
        return Path(self.url.removeprefix("sqlite:///")).stem or "items"
