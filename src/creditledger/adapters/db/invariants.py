"""Invariants I1–I3, I5, I6 and I9 of QUALITY.md, checked against the live database.

Each check yields a sentence per violation; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa

from creditledger.adapters.db import tables as t

_FLOAT_TYPES = ("REAL", "FLOAT", "DOUBLE", "NUMERIC", "DECIMAL")
_APPEND_ONLY = ("ledger_transactions", "postings", "audit_events")


class SqlInvariants:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def violations(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            yield from _balanced_transactions(conn)
            yield from _grants_match_postings(conn)
            yield from _team_caches_match_postings(conn)
            yield from _balance_after_chain(conn)
            yield from _ledger_append_only(conn)
            yield from _one_grant_per_payment(conn)
            yield from _promo_redemptions(conn)


def _balanced_transactions(conn: sa.Connection) -> Iterator[str]:
    """I1: every transaction's postings sum to zero (and it has postings)."""
    p, tx = t.postings, t.ledger_transactions
    unbalanced = conn.execute(
        sa.select(p.c.transaction_id, sa.func.sum(p.c.amount_nanos))
        .group_by(p.c.transaction_id)
        .having(sa.func.sum(p.c.amount_nanos) != 0)
    )
    for tx_id, total in unbalanced:
        yield f"I1: transaction {tx_id} postings sum to {total}, not 0"
    # An anti-join, not a correlated NOT EXISTS: postings has no index on transaction_id,
    # and SQLite runs a correlated subquery as one scan of postings per transaction.
    empty = conn.execute(
        sa.select(tx.c.id)
        .select_from(tx.outerjoin(p, p.c.transaction_id == tx.c.id))
        .where(p.c.seq.is_(None))
    )
    for (tx_id,) in empty:
        yield f"I1: transaction {tx_id} has no postings"


def _grants_match_postings(conn: sa.Connection) -> Iterator[str]:
    """I2: amount − drawn − expired − voided = remaining ≥ 0, from the postings."""
    p, g, tx = t.postings, t.grants, t.ledger_transactions
    sums = (
        sa.select(
            p.c.grant_id,
            sa.func.sum(p.c.amount_nanos).label("balance"),
            sa.func.sum(sa.case((tx.c.type == "grant", p.c.amount_nanos), else_=0)).label("issued"),
            sa.func.sum(
                sa.case(
                    (tx.c.type.not_in(("grant", "adjustment")) & (p.c.amount_nanos > 0), 1),
                    else_=0,
                )
            ).label("positive_draws"),
        )
        .join(tx, tx.c.id == p.c.transaction_id)
        .where(p.c.grant_id.is_not(None))
        .group_by(p.c.grant_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            g.c.id,
            g.c.amount_nanos,
            g.c.remaining_nanos,
            sums.c.balance,
            sums.c.issued,
            sums.c.positive_draws,
        ).outerjoin(sums, sums.c.grant_id == g.c.id)
    )
    for r in rows:
        if r.issued != r.amount_nanos:
            yield f"I2: grant {r.id} amount {r.amount_nanos} but issued {r.issued}"
        if r.balance != r.remaining_nanos:
            yield f"I2: grant {r.id} remaining {r.remaining_nanos} but postings say {r.balance}"
        if r.remaining_nanos is not None and r.remaining_nanos < 0:
            yield f"I2: grant {r.id} remaining is negative"
        if r.positive_draws:
            yield f"I2: grant {r.id} has {r.positive_draws} non-issuing postings that add credit"


def _team_caches_match_postings(conn: sa.Connection) -> Iterator[str]:
    """I3: teams.credit_nanos = Σ remaining; teams.unpaid_nanos = −Σ unpaid postings."""
    g, p, teams = t.grants, t.postings, t.teams
    remaining = (
        sa.select(g.c.team_id, sa.func.sum(g.c.remaining_nanos).label("credit"))
        .group_by(g.c.team_id)
        .subquery()
    )
    unpaid = (
        sa.select(p.c.team_id, (-sa.func.sum(p.c.amount_nanos)).label("unpaid"))
        .where(p.c.account.like("team_unpaid:%"))
        .group_by(p.c.team_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            teams.c.id,
            teams.c.credit_nanos,
            teams.c.unpaid_nanos,
            remaining.c.credit,
            unpaid.c.unpaid,
        )
        .outerjoin(remaining, remaining.c.team_id == teams.c.id)
        .outerjoin(unpaid, unpaid.c.team_id == teams.c.id)
    )
    for r in rows:
        if r.credit_nanos != (r.credit or 0):
            yield f"I3: team {r.id} credit {r.credit_nanos} but grants hold {r.credit or 0}"
        if r.unpaid_nanos != (r.unpaid or 0):
            yield f"I3: team {r.id} unpaid {r.unpaid_nanos} but postings say {r.unpaid or 0}"


def _balance_after_chain(conn: sa.Connection) -> Iterator[str]:
    """I3: each history entry's balance_after is the running sum of the team's grant postings."""
    p = t.postings
    credit_amount = sa.case((p.c.grant_id.is_not(None), p.c.amount_nanos), else_=0)
    running = (
        sa.select(
            p.c.seq,
            p.c.team_id,
            p.c.balance_after_nanos,
            sa.func.sum(credit_amount)
            .over(partition_by=p.c.team_id, order_by=p.c.seq)
            .label("expected"),
        )
        .where(p.c.team_id.is_not(None))
        .subquery()
    )
    rows = conn.execute(
        sa.select(running).where(running.c.balance_after_nanos != running.c.expected).limit(100)
    )
    for r in rows:
        yield (
            f"I3: posting {r.seq} of team {r.team_id} says balance {r.balance_after_nanos}, "
            f"the ledger says {r.expected}"
        )


def _ledger_append_only(conn: sa.Connection) -> Iterator[str]:
    """I9: triggers keep the ledger (and the audit log) append-only; no money column is
    a float."""
    inspector = sa.inspect(conn)
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            type_name = str(column["type"]).upper()
            if any(type_name.startswith(f) for f in _FLOAT_TYPES):
                yield f"I9: column {table}.{column['name']} is {type_name}, not an integer"
    if conn.dialect.name == "postgresql":
        found = {
            row[0]
            for row in conn.execute(
                sa.text(
                    "SELECT event_object_table FROM information_schema.triggers "
                    "WHERE trigger_name LIKE '%append_only'"
                )
            )
        }
    else:
        found = {
            row[0]
            for row in conn.execute(
                sa.text(
                    "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' "
                    "AND name LIKE '%no_update'"
                )
            )
        }
    for table in _APPEND_ONLY:
        if table not in found:
            yield f"I9: table {table} has no append-only trigger"


def _one_grant_per_payment(conn: sa.Connection) -> Iterator[str]:
    """I6: one prepaid grant per provider payment, of its amount; no purchase or recharge
    credit without a payment; refunds taken back match the payments' records."""
    pay, g, p, tx = t.payments, t.grants, t.postings, t.ledger_transactions
    rows = conn.execute(
        sa.select(
            pay.c.provider_payment_id,
            pay.c.amount_nanos,
            pay.c.team_id,
            pay.c.purpose,
            g.c.id.label("grant_id"),
            g.c.kind,
            g.c.source,
            g.c.amount_nanos.label("granted"),
            g.c.team_id.label("grant_team"),
        ).outerjoin(g, g.c.id == pay.c.grant_id)
    )
    for r in rows:
        if r.grant_id is None:
            yield f"I6: payment {r.provider_payment_id} has no grant"
        elif (r.kind, r.source, r.granted, r.grant_team) != (
            "prepaid",
            r.purpose,
            r.amount_nanos,
            r.team_id,
        ):
            yield (
                f"I6: payment {r.provider_payment_id} of {r.amount_nanos} does not match its "
                f"grant {r.grant_id} ({r.kind} {r.source} {r.granted})"
            )
    unpaid = conn.execute(
        sa.select(g.c.id).where(
            g.c.kind == "prepaid",
            g.c.source.in_(("purchase", "auto_recharge")),
            ~sa.exists().where(pay.c.grant_id == g.c.id),
        )
    )
    for (grant_id,) in unpaid:
        yield f"I6: prepaid grant {grant_id} has no provider payment"
    granted = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(g.c.amount_nanos), 0)).where(
            g.c.kind == "prepaid", g.c.source.in_(("purchase", "auto_recharge"))
        )
    ).scalar_one()
    paid, written_off = conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(pay.c.amount_nanos), 0),
            sa.func.coalesce(sa.func.sum(pay.c.refund_written_off_nanos), 0),
        )
    ).one()
    if granted != paid:
        yield f"I6: prepaid credit granted {granted} but payments received {paid}"
    refunded_back = conn.execute(
        sa.select(sa.func.coalesce(-sa.func.sum(p.c.amount_nanos), 0))
        .join(tx, tx.c.id == p.c.transaction_id)
        .join(pay, pay.c.grant_id == p.c.grant_id)
        .where(tx.c.type == "refund")
    ).scalar_one()
    if refunded_back != written_off:
        yield f"I6: refunds took {refunded_back} back from grants, payments record {written_off}"


def _promo_redemptions(conn: sa.Connection) -> Iterator[str]:
    """I5: redemptions ≤ max and = the count; one per team; Σ promo grants = redemptions × amount.

    Every grant with source ``promo_code`` is the grant of exactly one redemption, for its
    redemption's team, promotional, and of its code's amount.
    """
    pc, r, g = t.promo_codes, t.promo_redemptions, t.grants
    per_code = (
        sa.select(
            r.c.promo_code_id,
            sa.func.count().label("redemptions"),
            sa.func.count(sa.distinct(r.c.team_id)).label("teams"),
            sa.func.sum(g.c.amount_nanos).label("granted"),
        )
        .join(g, g.c.id == r.c.grant_id)
        .group_by(r.c.promo_code_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            pc.c.id,
            pc.c.amount_nanos,
            pc.c.max_redemptions,
            pc.c.redemptions_count,
            per_code.c.redemptions,
            per_code.c.teams,
            per_code.c.granted,
        ).outerjoin(per_code, per_code.c.promo_code_id == pc.c.id)
    )
    for row in rows:
        redemptions = row.redemptions or 0
        if row.redemptions_count > row.max_redemptions:
            yield (
                f"I5: promo code {row.id} redeemed {row.redemptions_count} times, "
                f"max {row.max_redemptions}"
            )
        if row.redemptions_count != redemptions:
            yield (
                f"I5: promo code {row.id} counts {row.redemptions_count} redemptions, "
                f"{redemptions} recorded"
            )
        if (row.teams or 0) != redemptions:
            yield f"I5: promo code {row.id} was redeemed more than once by one team"
        if (row.granted or 0) != redemptions * row.amount_nanos:
            yield (
                f"I5: promo code {row.id} granted {row.granted or 0}, "
                f"not {redemptions} × {row.amount_nanos}"
            )
    stray = conn.execute(
        sa.select(g.c.id)
        .outerjoin(r, r.c.grant_id == g.c.id)
        .where(
            g.c.source == "promo_code",
            sa.or_(r.c.id.is_(None), r.c.team_id != g.c.team_id, g.c.kind != "promotional"),
        )
    )
    for (grant_id,) in stray:
        yield f"I5: promo grant {grant_id} does not match a redemption of its team"
    orphans = conn.execute(
        sa.select(r.c.id).join(g, g.c.id == r.c.grant_id).where(g.c.source != "promo_code")
    )
    for (redemption_id,) in orphans:
        yield f"I5: redemption {redemption_id} points at a grant that is not a promo grant"
