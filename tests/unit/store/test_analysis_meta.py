"""The analysis meta rows as read: both required, parsed, share-locked on request."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import psycopg
import pytest

from store.analysis_meta import Analysis, MissingMetaError, read_analysis


class _Meta:
    """Stands in for a connection holding `rows` in `meta`; records the statements it ran."""

    def __init__(self, rows: dict[str, str]) -> None:
        self.rows = rows
        self.statements: list[str] = []

    def cursor(self, **_kwargs: object) -> _Meta:
        return self

    def __enter__(self) -> _Meta:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def execute(self, query: str) -> _Meta:
        self.statements.append(query)
        return self

    def fetchall(self) -> list[tuple[str, str]]:
        return list(self.rows.items())


def _conn(meta: _Meta) -> psycopg.Connection[Any]:
    return cast("psycopg.Connection[Any]", meta)


def test_both_rows_make_the_analysis_settings() -> None:
    meta = _Meta({"h3_resolution": "9", "pass_gap_s": "300.0"})
    assert read_analysis(_conn(meta)) == Analysis(9, timedelta(seconds=300))
    assert not meta.statements[0].endswith("FOR SHARE")
    read_analysis(_conn(meta), lock=True)
    assert meta.statements[1].endswith(" FOR SHARE")


@pytest.mark.parametrize("missing", ["h3_resolution", "pass_gap_s"])
def test_a_missing_row_is_an_unmigrated_database_not_a_default(missing: str) -> None:
    rows = {"h3_resolution": "10", "pass_gap_s": "120"}
    del rows[missing]
    with pytest.raises(MissingMetaError) as caught:
        read_analysis(_conn(_Meta(rows)))
    assert caught.value.key == missing
    assert "migrated" in str(caught.value)
