"""The reads of a few charges as one call on PostgreSQL (migration 0015,
docs/decisions/0037).

Before it allocates a few events, a charge locks their teams and reads the stored
fingerprints of their ids, the teams' pricing and their grants
(``SqlUnitOfWork.read_for_usage``). Sent in one pipeline, those are five statements
(with the plan setting of ``bulk.reuse_plans``), each a result for the driver to read
and turn into rows. Here they are one call of :data:`FUNCTION`, which runs the very
same statements (built by ``bulk.lookup_sql`` and ``bulk.pairs_sql`` from the
repositories' own SQL), in the same order, each on a snapshot taken after the teams are
locked, and answers their rows as one JSON document: ``[locks, fingerprints, pricing,
grants]``, each a list of rows (or null for none), a row an object of its values in
column order.

Migrations run this text: change it only together with a migration that applies the
change. ``tests/integration/test_charge_calls.py`` pins it to migration 0015 and checks
that the call answers what the statements one by one answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from creditledger.adapters.db import bulk
from creditledger.adapters.db.pricing import PRICING_OF_TEAMS
from creditledger.adapters.db.repositories import GRANTS_OF_TEAMS, LOCK_ORDER, USAGE_LOCK
from creditledger.adapters.db.usage import FINGERPRINT_KEY, FINGERPRINTS

FUNCTION = "creditledger_read_for_usage"
CALL = f"SELECT CAST({FUNCTION}(%s, %s, %s) AS text)"
"""The call, answered as text for :func:`answer` to decode (orjson, several times the
speed of the driver's own JSON loader)."""
DROP = f"DROP FUNCTION {FUNCTION}"
"""By name, whatever its parameters: a later migration that changes them drops the
function this way, on a database made before it and on one made since."""

_TEAMS = "string_to_array(team_ids, ' ')"


def statements() -> list[tuple[str, str]]:
    """(variable, statement) of each read, in order."""
    return [
        ("locks", bulk.lookup_sql(USAGE_LOCK, "id", LOCK_ORDER, _TEAMS)),
        (
            "fingerprints",
            bulk.pairs_sql(
                FINGERPRINTS,
                FINGERPRINT_KEY,
                "string_to_array(key_teams, ' ')",
                "string_to_array(key_events, ' ')",
            ),
        ),
        ("pricing", bulk.lookup_sql(PRICING_OF_TEAMS, "team_id", "", _TEAMS)),
        ("grants", bulk.lookup_sql(GRANTS_OF_TEAMS, "team_id", "", _TEAMS)),
    ]


def create_function() -> str:
    reads = statements()
    declare = " ".join(f"{name}_rows json;" for name, _ in reads)
    body = "\n".join(
        f"  SELECT json_agg(ROW(q.*)) INTO {name}_rows FROM ({sql}) AS q;"  # noqa: S608 - constants
        for name, sql in reads
    )
    answer = ", ".join(f"{name}_rows" for name, _ in reads)
    # set_config(…, true) is SET LOCAL: the plans made once hold for the rest of the
    # transaction, as bulk.reuse_plans makes them (a SET clause would end with the call).
    return f"""
        CREATE FUNCTION {FUNCTION}(team_ids text, key_teams text, key_events text)
        RETURNS json LANGUAGE plpgsql AS $$
        DECLARE {declare}
        BEGIN
          PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
        {body}
          RETURN json_build_array({answer});
        END $$
        """


def fits(team_ids: Sequence[str], keys: Sequence[tuple[str, str]]) -> bool:
    """Whether these ids can travel as the call's space-separated lists: at most
    ``bulk.LOOKUPS`` keys (a few rows' plans, as ``bulk.reuse_plans``), none empty or
    holding a space."""
    if len(keys) > bulk.LOOKUPS:
        return False
    values = [*team_ids, *(event for _, event in keys)]
    return all(value and " " not in value for value in values)


def arguments(team_ids: Sequence[str], keys: Sequence[tuple[str, str]]) -> list[str]:
    return [
        " ".join(team_ids),
        " ".join(team for team, _ in keys),
        " ".join(event for _, event in keys),
    ]


def answer(text: str) -> list[list[tuple[Any, ...]]]:
    """Each read's rows from the call's document (objects of their values in order)."""
    return [[tuple(row.values()) for row in read or ()] for read in orjson.loads(text)]
