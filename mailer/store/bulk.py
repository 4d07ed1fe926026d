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
    """Insert the rows in order: COPY on PostgreSQL (several times faster than one INSERT a
    row, even pipelined), executemany on SQLite (in process, already fast)."""
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        raw: Any = connection.connection.driver_connection
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    connection.exec_driver_sql(sql, list(rows))


def inserted_ids(
    connection: Connection, table: Table, key: ColumnClause[Any], keys: Sequence[Any]
) -> list[int]:
    """The ids bulk_insert just gave the rows with these keys, in the order of `keys`.

    On SQLite the inserting connection holds the only write lock and the table has no
    AUTOINCREMENT, so a run of inserts takes consecutive rowids ending at last_insert_rowid();
    no query over the keys is needed. Elsewhere the ids are read back by key.
    """
    if not keys:
        return []
    if connection.dialect.name == "sqlite":
        last = int(connection.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
        return list(range(last - len(keys) + 1, last + 1))
    found = connection.execute(select(key, table.c.id).where(one_of(connection, key, keys)))
    by_key = {row[0]: row[1] for row in found}
    return [by_key[k] for k in keys]


def insert_for_ids(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    ids: Sequence[int],
    values: Sequence[Any],
) -> None:
    """One row per id: the id in `columns[0]`, the same `values` in the other columns.

    The ids travel as one parameter (a JSON array on SQLite, an array on PostgreSQL) and the
    database makes the rows: the memberships of a batch of new people cost no Python per row,
    where executemany took a third of a row's time binding them."""
    if not ids:
        return
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        markers = ", ".join("%s" for _ in values)
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({names}) SELECT id, {markers} "
            "FROM unnest(%s::bigint[]) AS id",
            (*values, list(ids)),
        )
        return
    markers = ", ".join("?" for _ in values)
    connection.exec_driver_sql(
        f"INSERT INTO {table.name} ({names}) SELECT value, {markers} FROM json_each(?)",
        (*values, json.dumps(list(ids))),
    )


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
