"""Invariants I1–I9 of docs/quality.md, checked against the live database.

Each check yields a sentence per violation; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from msgspec.structs import replace

from creditledger.adapters.db import tables as t
from creditledger.adapters.db.rows import grant_from_row
from creditledger.domain.consumption import in_consumption_order, is_eligible
from creditledger.domain.grants import Grant, UsageScope
from creditledger.domain.invoices import InvoiceStatus, LineKind, invoice_number
from creditledger.domain.ledger import TEAM_OWED_PREFIXES, invoice_account, unpaid_account
from creditledger.domain.money import round_half_even_to_cents

_FLOAT_TYPES = ("REAL", "FLOAT", "DOUBLE", "NUMERIC", "DECIMAL")
_APPEND_ONLY = ("ledger_transactions", "postings", "audit_events")


class SqlInvariants:
    def __init__(
        self, engine: sa.Engine, late_arrival_window: timedelta = timedelta(hours=1)
    ) -> None:
        self.engine = engine
        self.late_arrival_window = late_arrival_window

    def violations(self) -> Iterator[str]:
        with self.engine.connect() as conn:
            yield from _balanced_transactions(conn)
            yield from _grants_match_postings(conn)
            yield from _team_caches_match_postings(conn)
            yield from _balance_after_chain(conn)
            yield from _ledger_append_only(conn)
            yield from _references(conn)
            yield from _one_grant_per_payment(conn)
            yield from _promo_redemptions(conn)
            yield from usage_charged_once(conn)
            yield from consumption_order(conn, self.late_arrival_window)
            yield from invoices_add_up(conn)


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
    """I3: teams.credit_nanos = Σ remaining; teams.unpaid_nanos = −Σ postings to what the
    team owes (its unpaid balance and its invoices)."""
    g, p, teams = t.grants, t.postings, t.teams
    remaining = (
        sa.select(g.c.team_id, sa.func.sum(g.c.remaining_nanos).label("credit"))
        .group_by(g.c.team_id)
        .subquery()
    )
    unpaid = (
        sa.select(p.c.team_id, (-sa.func.sum(p.c.amount_nanos)).label("unpaid"))
        .where(sa.or_(*(p.c.account.like(f"{prefix}%") for prefix in TEAM_OWED_PREFIXES)))
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


def _references(conn: sa.Connection) -> Iterator[str]:
    """I9: no usage or ledger row refers to a missing row. PostgreSQL checks these
    references per statement by trigger (migration 0013), SQLite as foreign keys; this
    reads them all again."""
    for table, column, referred in sorted(t.PER_STATEMENT_KEYS):
        child, parent = t.metadata.tables[table], t.metadata.tables[referred]
        key = child.c[column]
        orphans = conn.execute(
            sa.select(sa.func.count())
            .select_from(child)
            .where(key.is_not(None), ~sa.exists().where(parent.c.id == key))
        ).scalar_one()
        if orphans:
            yield f"I9: {orphans} {table} rows refer to a missing {referred} row ({column})"


def _one_grant_per_payment(conn: sa.Connection) -> Iterator[str]:
    """I6: one prepaid grant per provider payment of a purchase or recharge, of its
    amount; no purchase or recharge credit without a payment; refunds taken back match
    the payments' records. A payment of an invoice grants nothing: it pays the invoice
    (I8 checks the invoice's account)."""
    pay, g, p, tx, inv = t.payments, t.grants, t.postings, t.ledger_transactions, t.invoices
    invoice_payments = conn.execute(
        sa.select(pay.c.provider_payment_id, pay.c.amount_nanos, inv.c.total_nanos, inv.c.status)
        .outerjoin(inv, inv.c.id == pay.c.invoice_id)
        .where(pay.c.purpose == "invoice")
    )
    for paid in invoice_payments:
        if paid.status != "paid" or paid.amount_nanos != paid.total_nanos:
            yield (
                f"I6: invoice payment {paid.provider_payment_id} of {paid.amount_nanos} does "
                f"not match a paid invoice ({paid.status} {paid.total_nanos})"
            )
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
        )
        .outerjoin(g, g.c.id == pay.c.grant_id)
        .where(pay.c.purpose != "invoice")
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
        ).where(pay.c.purpose != "invoice")
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


def usage_charged_once(conn: sa.Connection) -> Iterator[str]:
    """I4: each usage event is charged at most once, by a transaction of its own whose
    postings draw ``charge − uncovered`` from grants and leave ``uncovered`` unpaid (after
    any re-allocation a late event caused); Σ uncovered = the team's unpaid balance."""
    e, p, tx, teams = t.usage_events, t.postings, t.ledger_transactions, t.teams
    per_tx = (
        sa.select(
            p.c.transaction_id,
            sa.func.sum(sa.case((p.c.grant_id.is_not(None), -p.c.amount_nanos), else_=0)).label(
                "drawn"
            ),
            sa.func.sum(
                sa.case((p.c.account.like("team_unpaid:%"), -p.c.amount_nanos), else_=0)
            ).label("unpaid"),
            sa.func.sum(
                sa.case((p.c.account == "platform:usage_revenue", p.c.amount_nanos), else_=0)
            ).label("revenue"),
        )
        .group_by(p.c.transaction_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(
            e.c.team_id,
            e.c.event_id,
            e.c.charge_nanos,
            e.c.uncovered_nanos,
            e.c.transaction_id,
            per_tx.c.drawn,
            per_tx.c.unpaid,
            per_tx.c.revenue,
        ).outerjoin(per_tx, per_tx.c.transaction_id == e.c.transaction_id)
    )
    # A late event may re-allocate later ones: their adjustments move the split.
    moved: dict[tuple[str, str], tuple[int, int]] = {}
    adjustments = conn.execute(
        sa.select(
            tx.c.team_id,
            tx.c.reference,
            sa.func.sum(sa.case((p.c.grant_id.is_not(None), -p.c.amount_nanos), else_=0)),
            sa.func.sum(sa.case((p.c.account.like("team_unpaid:%"), -p.c.amount_nanos), else_=0)),
        )
        .join(p, p.c.transaction_id == tx.c.id)
        .where(tx.c.type == "adjustment")
        .group_by(tx.c.team_id, tx.c.reference)
    )
    for team_id, reference, drawn, unpaid in adjustments:
        moved[(team_id, reference)] = (int(drawn), int(unpaid))
    for r in rows:
        if r.transaction_id is None:
            if r.charge_nanos != 0 or r.uncovered_nanos != 0:
                yield f"I4: event {r.event_id} charged {r.charge_nanos} without postings"
            continue
        extra_drawn, extra_unpaid = moved.get((r.team_id, r.event_id), (0, 0))
        if ((r.drawn or 0) + extra_drawn, (r.unpaid or 0) + extra_unpaid, r.revenue) != (
            r.charge_nanos - r.uncovered_nanos,
            r.uncovered_nanos,
            r.charge_nanos,
        ):
            yield (
                f"I4: event {r.event_id} charge {r.charge_nanos} (uncovered {r.uncovered_nanos}) "
                f"but postings drew {r.drawn}, unpaid {r.unpaid}, revenue {r.revenue}"
            )
    shared = conn.execute(
        sa.select(e.c.transaction_id)
        .where(e.c.transaction_id.is_not(None))
        .group_by(e.c.transaction_id)
        .having(sa.func.count() > 1)
    )
    for (tx_id,) in shared:
        yield f"I4: transaction {tx_id} charges several events"
    # An anti-join, not a correlated NOT EXISTS: usage_events has no index on
    # transaction_id, and SQLite would scan every event once per usage transaction.
    orphans = conn.execute(
        sa.select(tx.c.id)
        .select_from(tx.outerjoin(e, e.c.transaction_id == tx.c.id))
        .where(tx.c.type == "usage", e.c.event_id.is_(None))
    )
    for (tx_id,) in orphans:
        yield f"I4: usage transaction {tx_id} belongs to no event"
    totals = conn.execute(
        sa.select(
            teams.c.id,
            teams.c.unpaid_nanos,
            sa.select(sa.func.coalesce(sa.func.sum(e.c.uncovered_nanos), 0))
            .where(e.c.team_id == teams.c.id)
            .scalar_subquery()
            .label("uncovered"),
        )
    )
    settled = _settled_by_invoices(conn)
    for team in totals:
        # Every uncovered nano is still owed unless an invoice was paid or written off.
        owed = team.uncovered - settled.get(team.id, 0)
        if team.unpaid_nanos != owed:
            yield (
                f"I4: team {team.id} unpaid {team.unpaid_nanos} but its events left "
                f"{team.uncovered} and invoices settled {settled.get(team.id, 0)}"
            )


def _settled_by_invoices(conn: sa.Connection) -> dict[str, int]:
    """Per team, what paid and voided invoices took off what it owes: the total of one
    that was opened, everything a voided draft stood for."""
    i = t.invoices
    rows = conn.execute(
        sa.select(i.c.team_id, i.c.total_nanos, i.c.exact_nanos, i.c.opened_at).where(
            i.c.status.in_([InvoiceStatus.PAID.value, InvoiceStatus.VOID.value])
        )
    )
    settled: dict[str, int] = {}
    for r in rows:
        amount = r.total_nanos if r.opened_at is not None else r.exact_nanos
        settled[r.team_id] = settled.get(r.team_id, 0) + amount
    return settled


def invoices_add_up(conn: sa.Connection) -> Iterator[str]:
    """I8: each invoice's total is Σ its lines, each line rounded once to cents; what it
    stands for is exactly the uncovered usage it marked plus what the invoice before it
    carried; its ledger account owes its amount due; every unpaid nano is on exactly one
    invoice or still open (the unpaid balance holds the unmarked usage and the last
    carry); numbers run from CL-000001 with no gap."""
    i, e, p = t.invoices, t.usage_events, t.postings
    billed = {
        (r.invoice_id, r.product, r.model): int(r.uncovered)
        for r in conn.execute(
            sa.select(
                e.c.invoice_id,
                e.c.product,
                e.c.model,
                sa.func.sum(e.c.uncovered_nanos).label("uncovered"),
            )
            .where(e.c.invoice_id.is_not(None))
            .group_by(e.c.invoice_id, e.c.product, e.c.model)
        )
    }
    owed = {
        r.account: int(r.balance)
        for r in conn.execute(
            sa.select(p.c.account, sa.func.sum(p.c.amount_nanos).label("balance"))
            .where(sa.or_(*(p.c.account.like(f"{prefix}%") for prefix in TEAM_OWED_PREFIXES)))
            .group_by(p.c.account)
        )
    }
    open_usage = {
        r.team_id: int(r.uncovered)
        for r in conn.execute(
            sa.select(e.c.team_id, sa.func.sum(e.c.uncovered_nanos).label("uncovered"))
            .where(e.c.invoice_id.is_(None))
            .group_by(e.c.team_id)
        )
    }
    invoices = conn.execute(sa.select(i).order_by(i.c.team_id, i.c.period_start)).all()
    carried: dict[str, int] = {}
    by_usage: dict[str, dict[tuple[str, str], int]] = {}
    for (inv_id, product, model), uncovered in billed.items():
        by_usage.setdefault(inv_id, {})[(product, model)] = uncovered
    for inv in invoices:
        yield from _invoice_adds_up(inv, carried.get(inv.team_id, 0), by_usage.pop(inv.id, {}))
        balance = owed.get(invoice_account(inv.id), 0)
        due = inv.total_nanos if inv.status in _OWING else 0
        if balance != -due:
            yield f"I8: invoice {inv.id} owes {-balance} in the ledger but {due} is due"
        carried[inv.team_id] = inv.carry_nanos if inv.opened_at is not None else 0
    for inv_id in by_usage:
        yield f"I8: usage is marked billed by {inv_id}, which is no invoice"
    teams = conn.execute(sa.select(t.teams.c.id)).scalars()
    for team_id in teams:
        unpaid = -owed.get(unpaid_account(team_id), 0)
        expected = open_usage.get(team_id, 0) + carried.get(team_id, 0)
        if unpaid != expected:
            yield (
                f"I8: team {team_id} has {unpaid} unpaid before invoicing, but its usage "
                f"no invoice billed is {open_usage.get(team_id, 0)} and it carries "
                f"{carried.get(team_id, 0)}"
            )
    numbers = conn.execute(
        sa.select(i.c.sequence, i.c.number).where(i.c.sequence.is_not(None)).order_by(i.c.sequence)
    ).all()
    last = conn.execute(sa.select(t.invoice_sequence.c.last_value)).scalar() or 0
    for n, row in enumerate(numbers, 1):
        if row.sequence != n or row.number != invoice_number(n):
            yield f"I8: invoice number {row.number} (#{row.sequence}) breaks the sequence at {n}"
            break
    if len(numbers) != last:
        yield f"I8: {last} invoice numbers were given but {len(numbers)} invoices have one"


_OWING = (InvoiceStatus.OPEN.value, InvoiceStatus.UNCOLLECTIBLE.value)


def _invoice_adds_up(inv: Any, carried_in: int, usage: dict[tuple[str, str], int]) -> Iterator[str]:
    lines = list(inv.lines)
    if sum(int(line["amount"]) for line in lines) != inv.total_nanos:
        yield f"I8: invoice {inv.id} total {inv.total_nanos} is not the sum of its lines"
    by_subject: dict[tuple[str, str], int] = {}
    for line in lines:
        amount, exact = int(line["amount"]), int(line["exact"])
        if line["kind"] != LineKind.CARRIED_OUT.value and amount != round_half_even_to_cents(exact):
            yield f"I8: invoice {inv.id} line {line['description']!r} is not {exact} rounded once"
        if line["kind"] == LineKind.USAGE.value:
            key = (line["product"], line["model"])
            by_subject[key] = by_subject.get(key, 0) + exact
    if by_subject != usage:
        yield f"I8: invoice {inv.id} lines bill {by_subject} but it marked usage {usage}"
    if inv.exact_nanos != sum(usage.values()) + carried_in:
        yield (
            f"I8: invoice {inv.id} stands for {inv.exact_nanos} but it marked "
            f"{sum(usage.values())} and was carried {carried_in}"
        )


def consumption_order(conn: sa.Connection, window: timedelta) -> Iterator[str]:
    """I7: replaying the ledger in order, no usage transaction drew a grant while an
    earlier-ordered grant eligible for it still had credit, nor left usage unpaid while
    an eligible grant had any.

    ``window`` is the late-arrival window: a grant stops being eligible for usage that
    arrives once its expiry is that far past, whatever the usage's own time.
    """
    e = t.usage_events
    ordered = _grants_in_order_by_team(conn)
    scopes = {
        r.transaction_id: UsageScope(r.product, r.model, r.gpu)
        for r in conn.execute(
            sa.select(e.c.transaction_id, e.c.product, e.c.model, e.c.gpu).where(
                e.c.transaction_id.is_not(None)
            )
        )
    }
    transactions = _transactions_in_commit_order(conn)
    remaining: dict[str, int] = {g.id: 0 for gs in ordered.values() for g in gs}
    # A team whose usage a late event re-allocated ends as if charged in time order, not
    # in arrival order: replaying arrival order does not apply to it.
    reallocated = {b[0].team_id for b in transactions.values() if b[0].type == "adjustment"}
    for tx_id, batch in transactions.items():
        first = batch[0]
        if first.team_id in reallocated:
            continue
        usage = scopes.get(tx_id) if first.type == "usage" else None
        eligible = [] if usage is None else _eligible(ordered, remaining, usage, first, window)
        for r in batch:
            if r.grant_id is not None:
                remaining[r.grant_id] += r.amount_nanos
        if usage is not None:
            yield from _drawn_out_of_order(tx_id, batch, eligible, remaining)


def _eligible(
    ordered: dict[str, list[Grant]],
    remaining: dict[str, int],
    usage: UsageScope,
    charge: Any,
    window: timedelta,
) -> list[str]:
    """The ids of the grants, in order, that could pay for ``charge`` when it arrived."""
    return [
        g.id
        for g in ordered.get(charge.team_id, ())
        if is_eligible(g, remaining[g.id], usage, charge.occurred_at)
        and (g.expires_at is None or charge.created_at < g.expires_at + window)
    ]


def _grants_in_order_by_team(conn: sa.Connection) -> dict[str, list[Grant]]:
    """Each team's grants in consumption order, as issued (nothing spent, none voided):
    the order does not depend on what is left, so it is sorted once."""
    by_team: dict[str, list[Grant]] = {}
    for row in conn.execute(sa.select(t.grants)):
        g = replace(grant_from_row(row), remaining=0, voided_at=None)
        by_team.setdefault(g.team_id, []).append(g)
    return {team_id: in_consumption_order(gs) for team_id, gs in by_team.items()}


def _transactions_in_commit_order(conn: sa.Connection) -> dict[str, list[Any]]:
    """Each transaction's postings, transactions in the order of their first posting.

    Postings of transactions committing at once interleave in ``seq`` (PostgreSQL hands
    out sequence values before commit), so a transaction is gathered whole before it is
    replayed; for one team, whose writers hold its lock, the order of first postings is
    the order they committed in.
    """
    p, tx = t.postings, t.ledger_transactions
    rows = conn.execute(
        sa.select(
            p.c.transaction_id,
            p.c.grant_id,
            p.c.account,
            p.c.amount_nanos,
            tx.c.team_id,
            tx.c.type,
            tx.c.occurred_at,
            tx.c.created_at,
        )
        .join(tx, tx.c.id == p.c.transaction_id)
        .order_by(p.c.seq)
    )
    by_transaction: dict[str, list[Any]] = {}
    for r in rows:
        by_transaction.setdefault(r.transaction_id, []).append(r)
    return by_transaction


def _drawn_out_of_order(
    tx_id: str, batch: list[Any], eligible: list[str], remaining: dict[str, int]
) -> Iterator[str]:
    """What one usage charge did against the order: drew a grant not eligible for it, or
    passed over one with credit left (before the last it drew, or at all if it left
    usage unpaid). ``remaining`` is already after the charge."""
    drawn = [r.grant_id for r in batch if r.grant_id is not None]
    for grant_id in drawn:
        if grant_id not in eligible:
            yield f"I7: {tx_id} drew grant {grant_id}, not eligible for it"
    uncovered = any(r.account.startswith("team_unpaid:") for r in batch)
    drawn_at = [eligible.index(g) for g in drawn if g in eligible]
    passed_over = eligible if uncovered else eligible[: max(drawn_at, default=0)]
    for grant_id in passed_over:
        if remaining[grant_id] != 0:
            yield (
                f"I7: {tx_id} left {remaining[grant_id]} on grant {grant_id}, ordered "
                "before what it drew or left unpaid"
            )
