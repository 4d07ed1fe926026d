"""Inserting and updating many rows at the speed of the database driver.

SQLAlchemy's executemany processes every value of every row in Python; for a million-row import
that costs more than the database itself. Here rows go to the driver as they are: their values
must already be what the driver takes (numbers, text, None, and times made by
`schema.driver_time`, once per batch).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, any_, bindparam, column, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnClause


def bulk_insert(
    connection: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    connection.exec_driver_sql(sql, list(rows))


def bulk_update(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    keys: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """`UPDATE table SET columns… WHERE keys…` for each row (the columns' values, then the
    keys'), handed to the driver as they are, like bulk_insert."""
    if not rows:
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    assignments = ", ".join(f"{name} = {marker}" for name in columns)
    conditions = " AND ".join(f"{name} = {marker}" for name in keys)
    connection.exec_driver_sql(
        f"UPDATE {table.name} SET {assignments} WHERE {conditions}", list(rows)
    )


def one_of(
    connection: Connection, target: ColumnClause[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """`target IN values` as one parameter however many values there are: an array on
    PostgreSQL, a JSON array on SQLite. A plain IN with thousands of values costs more to compile
    than to run."""
    if connection.dialect.name == "postgresql":
        return target == any_(bindparam(None, list(values), type_=ARRAY(target.type)))
    values_json = json.dumps(list(values), ensure_ascii=False)
    return target.in_(select(column("value")).select_from(func.json_each(values_json)))
