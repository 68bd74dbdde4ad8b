"""The writes of a few charges as one call on PostgreSQL (migration 0015,
docs/decisions/0037).

A group of single-event POSTs writes five statements' worth of rows: its usage
records, the teams' balances, the ledger transactions, their postings and the grants'
balances, with one statement per team and per grant for the updates. Sent one by one
in a pipeline, each costs the driver a result to read and PostgreSQL a statement to
bind, run and answer. Here they travel as one call of :data:`FUNCTION`, each table's
rows a JSON array of rows (values as the columns hold them): the function runs the
same inserts and updates, in the same order, on plans it keeps for the session.

The updates of many keys are one statement each. Its keys are also given as an array
that the key's index is searched for (``= ANY``), and the function turns off sequential
scans, hash and merge joins for its own statements: each key is one search of the
index, whatever the planner believed of the table when it made the plan it keeps
(docs/decisions/0036 saw a plan that scanned the table; joined to the rows alone, a
plan made on a small table read the whole index for each row). One team update per
call also means one change notice per call, not one per team.

Migrations run this text: change it only together with a migration that applies the
change, as 0014 did for ``key_checks``. ``tests/integration/test_charge_calls.py`` pins
the columns here to the ones the repositories write.
"""

from __future__ import annotations

from dataclasses import dataclass

FUNCTION = "creditledger_write_charges"


@dataclass(frozen=True, slots=True)
class Slot:
    """One table's part of the call: an insert of rows, or an addition to columns
    (``key`` first in each row, then one delta per column, ``bump`` counted up by 1)."""

    table: str
    columns: tuple[tuple[str, str], ...]
    """(name, SQL type) of each value of a row, in order."""
    key: str | None = None
    bump: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def parameter(self) -> str:
        return f"{self.table}_rows"


_TEXT, _BIGINT = "text", "bigint"

SLOTS = (
    Slot(
        "usage_events",
        (
            ("team_id", _TEXT),
            ("event_id", _TEXT),
            ("fingerprint", _TEXT),
            ("product", _TEXT),
            ("model", _TEXT),
            ("gpu", _TEXT),
            ("occurred_at", _BIGINT),
            ("charge_nanos", _BIGINT),
            ("uncovered_nanos", _BIGINT),
            ("transaction_id", _TEXT),
            ("received_at", _BIGINT),
            ("draws", _TEXT),
            ("unit", _TEXT),
            ("quantity", _BIGINT),
        ),
    ),
    Slot(
        "teams",
        (("credit_nanos", _BIGINT), ("unpaid_nanos", _BIGINT)),
        key="id",
        bump="revision",
    ),
    Slot(
        "ledger_transactions",
        (
            ("id", _TEXT),
            ("team_id", _TEXT),
            ("type", _TEXT),
            ("occurred_at", _BIGINT),
            ("created_at", _BIGINT),
            ("description", _TEXT),
            ("reference", _TEXT),
        ),
    ),
    Slot(
        "postings",
        (
            ("transaction_id", _TEXT),
            ("account", _TEXT),
            ("amount_nanos", _BIGINT),
            ("team_id", _TEXT),
            ("grant_id", _TEXT),
            ("balance_after_nanos", _BIGINT),
        ),
    ),
    Slot("grants", (("remaining_nanos", _BIGINT),), key="id"),
)
"""The call's parameters, in the order the function writes them: the order in which
``SqlUsage.add`` and ``SqlLedger.post_many`` write them one by one."""

WRITES = tuple((slot.table, slot.names, slot.key, slot.bump) for slot in SLOTS)
"""Each slot's write as ``bulk.insert_rows`` and ``bulk.add_to_columns`` describe it:
(table, columns, key, bump)."""

CALL = f"SELECT {FUNCTION}({', '.join('%s::json' for _ in SLOTS)})"
DROP = f"DROP FUNCTION {FUNCTION}"
"""By name, whatever its parameters: a later migration that changes them drops the
function this way, on a database made before it and on one made since."""


def _value(index: int, sql_type: str) -> str:
    text = f"r->>{index}"
    return text if sql_type == _TEXT else f"({text})::{sql_type}"


def _statement(slot: Slot) -> str:
    rows = f"json_array_elements({slot.parameter}) AS r"
    if slot.key is None:
        values = ", ".join(_value(i, t) for i, (_, t) in enumerate(slot.columns))
        return (
            f"INSERT INTO {slot.table} ({', '.join(slot.names)}) "  # noqa: S608 - constants only
            f"SELECT {values} FROM {rows}"
        )
    sets = [f"{name} = x.{name} + {_value(i + 1, t)}" for i, (name, t) in enumerate(slot.columns)]
    sets += [f"{slot.bump} = x.{slot.bump} + 1"] if slot.bump else []
    # The keys again as an array the index searches (``= ANY``): joined to the rows
    # alone, a plan made while the table was small read all of it for each row.
    keys = f"ARRAY(SELECT e->>0 FROM json_array_elements({slot.parameter}) AS e)"  # noqa: S608
    return (
        f"UPDATE {slot.table} AS x SET {', '.join(sets)} "  # noqa: S608 - constants only
        f"FROM {rows} WHERE x.{slot.key} = r->>0 AND x.{slot.key} = ANY ({keys})"
    )


def statements() -> list[str]:
    """The function's statements, one per slot, in order."""
    return [_statement(slot) for slot in SLOTS]


def create_function() -> str:
    params = ", ".join(f"{slot.parameter} json" for slot in SLOTS)
    body = "\n".join(
        f"  IF {slot.parameter} IS NOT NULL THEN\n    {sql};\n  END IF;"
        for slot, sql in zip(SLOTS, statements(), strict=True)
    )
    return f"""
        CREATE FUNCTION {FUNCTION}({params}) RETURNS void
        LANGUAGE plpgsql
        SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
        AS $$
        BEGIN
        {body}
        END $$
        """
