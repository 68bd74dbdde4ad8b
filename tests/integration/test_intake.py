"""The consume worker's use case over a fake stream (services/intake.py), on both
backends: one transaction per batch, acknowledgements only after the commit, a batch
delivered again charged nothing twice, refused messages kept with their codes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

from creditledger.domain.accounts import Principal, TokenKind
from creditledger.domain.errors import ServiceUnavailable
from creditledger.domain.intake import Delivery, IntakeNames, Rejected, message_id
from creditledger.services.accounts import sign_up
from creditledger.services.context import Context
from creditledger.services.intake import (
    BatchReport,
    charge_deliveries,
    consume,
    intake_principal,
    take_batch,
)
from creditledger.services.prices import PriceInput, set_price_book
from creditledger.services.usage import require_service
from tests.conftest import START
from tests.helpers import charged_events, event, prepaid_grant, usage_violations

T = START - timedelta(minutes=1)
NAMES = IntakeNames("usage", "USAGE", "creditledger")


@dataclass
class FakeStream:
    """A stream in memory: what is fetched stays held until acknowledged; ``lose_acks``
    drops acknowledgements on the way, as a dead worker or a broken connection would."""

    waiting: list[Delivery] = field(default_factory=list)
    held: list[Delivery] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    kept: list[Rejected] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    lose_acks: bool = False
    seq: int = 0

    def add(self, subject: str, body: bytes, msg_id: str | None) -> None:
        self.seq += 1
        self.waiting.append(Delivery(subject, body, msg_id, f"ack.{self.seq}", self.seq, 1, 0))

    def publish(self, raw: dict[str, Any], **overrides: Any) -> None:
        subject = overrides.get("subject", f"usage.events.{raw['team_id']}")
        msg_id = overrides.get("msg_id", message_id(raw["team_id"], raw["id"]))
        self.add(subject, orjson.dumps(raw), msg_id)

    def fetch(self, max_messages: int, wait_seconds: float) -> list[Delivery]:
        batch, self.waiting = self.waiting[:max_messages], self.waiting[max_messages:]
        left = len(self.waiting)
        batch = [replace(d, pending=left) for d in batch]
        self.held += batch
        return batch

    def reject(self, rejected: Sequence[Rejected]) -> None:
        self.kept += rejected

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not self.lose_acks:
            self.acked += [d.stream_seq for d in deliveries]
            self.held = [d for d in self.held if d not in deliveries]

    def retry_later(self, deliveries: Sequence[Delivery], delay_seconds: float) -> None:
        self.retried += [d.stream_seq for d in deliveries]

    def redeliver_held(self) -> None:
        """The acknowledgement wait ran out: what is held comes again."""
        self.waiting = [replace(d, delivered=d.delivered + 1) for d in self.held] + self.waiting
        self.held = []


@pytest.fixture
def team(ctx: Context) -> str:
    operator = Principal(TokenKind.OPERATOR, "tok_test_operator")
    set_price_book(ctx, operator, [PriceInput("serverless", "llama", None, "requests", "0.01", 1)])
    team_id = sign_up(ctx, "intake@example.com", "correct horse battery", "Intake").team.id
    prepaid_grant(ctx, team_id, "10.00")
    return team_id


def _balances(ctx: Context, team_id: str) -> tuple[int, int]:
    with ctx.uow(write=False) as uow:
        team = uow.teams.get(team_id)
        assert team is not None
        return sum(g.remaining for g in uow.grants.for_team(team_id)), team.unpaid


def test_a_batch_whose_acknowledgement_was_lost_is_charged_once_when_it_comes_again(
    ctx: Context, team: str
) -> None:
    stream = FakeStream(lose_acks=True)
    for n in range(30):
        stream.publish(event(team, f"e{n}", T, requests=1 + n % 3))

    first = take_batch(ctx, stream, NAMES, intake_principal(), 1000, 0.1)
    after_first = _balances(ctx, team)
    stream.lose_acks = False
    stream.redeliver_held()
    again = take_batch(ctx, stream, NAMES, intake_principal(), 1000, 0.1)

    assert first is not None and (first.accepted, first.duplicates) == (30, 0)
    assert again is not None and (again.accepted, again.duplicates) == (0, 30)
    assert again.redelivered == 30
    assert _balances(ctx, team) == after_first
    assert len(charged_events(ctx.settings.database_url)) == 30
    assert sorted(stream.acked) == list(range(1, 31))
    assert usage_violations(ctx.settings.database_url) == []


def test_refused_messages_are_kept_with_their_code_and_payload_and_the_rest_is_charged(
    ctx: Context, team: str
) -> None:
    stream = FakeStream()
    good = event(team, "good", T, requests=2)
    stream.publish(good)
    stream.publish(event(team, "model", T, model="nope", requests=1))
    stream.add(f"usage.events.{team}", b"{not json", None)
    stream.add(f"usage.events.{team}", b"[1, 2]", None)
    stream.publish(event(team, "elsewhere", T, requests=1), subject="usage.events.team_other")
    stream.publish(event(team, "bare-id", T, requests=1), msg_id="bare-id")
    stream.publish(event(team, "no-header", T, requests=1), msg_id=None)
    stream.publish(event("team_missing", "ghost", T, requests=1))

    report = take_batch(ctx, stream, NAMES, intake_principal(), 1000, 0.1)

    assert report is not None
    assert report.accepted == 2  # "good" and "no-header": the header is optional
    codes = {r.delivery.stream_seq: r.code for r in report.rejected}
    assert codes == {
        2: "unknown_model",
        3: "invalid_event",
        4: "invalid_event",
        5: "subject_mismatch",
        6: "message_id_mismatch",
        8: "unknown_team",
    }
    assert stream.kept == report.rejected
    assert {r.delivery.data for r in stream.kept} >= {b"{not json", b"[1, 2]"}
    assert sorted(stream.acked) == list(range(1, 9))  # refused messages are acknowledged too
    assert {e.event_id for e in charged_events(ctx.settings.database_url)} == {"good", "no-header"}


def test_a_batch_the_database_did_not_take_is_not_acknowledged_and_comes_again(
    ctx: Context, team: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = FakeStream()
    for n in range(5):
        stream.publish(event(team, f"e{n}", T, requests=1))

    def down(*_: object) -> list[object]:
        raise ServiceUnavailable("The database does not answer.")

    monkeypatch.setattr("creditledger.services.intake.ingest_together", down)
    report = take_batch(ctx, stream, NAMES, intake_principal(), 1000, 0.1)

    assert report is not None and report.failed == "The database does not answer."
    assert stream.acked == [] and stream.kept == []
    assert stream.retried == [1, 2, 3, 4, 5]
    assert charged_events(ctx.settings.database_url) == []


def test_the_worker_stops_between_batches_and_acknowledges_the_one_in_hand(
    ctx: Context, team: str
) -> None:
    stream = FakeStream()
    for n in range(25):
        stream.publish(event(team, f"e{n}", T, requests=1))
    seen: list[BatchReport | None] = []

    consume(
        ctx,
        stream,
        NAMES,
        stop=lambda: len(seen) >= 2,
        observe=seen.append,
        max_messages=10,
        wait_seconds=0.01,
    )

    assert [r.accepted for r in seen if r is not None] == [10, 10]
    assert [r.lag for r in seen if r is not None] == [15, 5]
    assert len(stream.acked) == 20 and stream.held == []
    assert len(stream.waiting) == 5


def test_the_worker_acts_as_a_platform_service_without_a_stored_token() -> None:
    principal = intake_principal()

    require_service(principal)  # does not raise
    assert principal.kind is TokenKind.SERVICE
    assert principal.token_id == "system:intake"


def test_a_message_of_another_team_than_its_subject_is_refused_before_pricing(
    ctx: Context, team: str
) -> None:
    delivery = Delivery(
        "usage.events.team_a", orjson.dumps(event(team, "x", T, requests=1)), None, "r", 1, 1, 0
    )

    report = charge_deliveries(ctx, NAMES, [delivery], intake_principal())

    assert [r.code for r in report.rejected] == ["subject_mismatch"]
    assert report.accepted == 0
