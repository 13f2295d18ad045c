"""The SQL sink's checkpoint table: the run's state, committed with each chunk's rows.

::

    flowschema_checkpoint (run_key VARCHAR(64) PRIMARY KEY, state TEXT)   in the target database

One row per checkpointed run (``run_key``: the checkpoint's stable key for this sink). The
sink updates it inside the transaction that inserts a chunk's rows, so the table holds
exactly the rows of the chunks the state counts, whatever moment the run died at.
"""

from __future__ import annotations

import json
from typing import Any

from ..sql_engine import import_sqlalchemy

STATE_TABLE = "flowschema_checkpoint"


def state_table(schema: str | None) -> Any:
    sa = import_sqlalchemy()
    return sa.Table(STATE_TABLE, sa.MetaData(), sa.Column("run_key", sa.String(64), primary_key=True),
                    sa.Column("state", sa.Text(), nullable=False), schema=schema)


def create(conn: Any, table: Any) -> None:
    table.metadata.create_all(conn, checkfirst=True)


def read(conn: Any, table: Any, key: str) -> dict[str, Any] | None:
    """The state stored under ``key``, or None (no row, or no table yet)."""
    sa = import_sqlalchemy()
    if not sa.inspect(conn).has_table(table.name, schema=table.schema):
        return None
    text = conn.execute(sa.select(table.c.state).where(table.c.run_key == key)).scalar()
    return None if text is None else dict(json.loads(text))


def write(conn: Any, table: Any, key: str, state: dict[str, Any]) -> None:
    """Store ``state`` under ``key`` in the connection's transaction (update, else insert)."""
    sa = import_sqlalchemy()
    text = json.dumps(state, sort_keys=True, default=str)
    if conn.execute(sa.update(table).where(table.c.run_key == key).values(state=text)).rowcount == 0:
        conn.execute(sa.insert(table).values(run_key=key, state=text))


def delete(conn: Any, table: Any, key: str) -> None:
    sa = import_sqlalchemy()
    conn.execute(sa.delete(table).where(table.c.run_key == key))
