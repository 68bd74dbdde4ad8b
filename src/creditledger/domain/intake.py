"""Usage intake from a stream: the publish contract and what a message must be.

A gateway publishes one usage event per message, on ``<prefix>.events.<team_id>``, with
the JSON of the event (docs/api.md) as the body and ``Nats-Msg-Id: <team_id>:<event id>``.
The id is team-qualified because the stream drops a repeated ``Nats-Msg-Id`` whatever
its subject, while event ids are unique per team only: two teams' events with one id
must both be kept (docs/decisions/0025).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from creditledger.domain.errors import EventError

_TOKEN_RE = re.compile(r"\A[A-Za-z0-9_-]+\Z")
"""What a team id must be to name a subject token (every id we issue is)."""


@dataclass(frozen=True, slots=True)
class IntakeNames:
    """Where usage flows: the stream and its subjects, the rejects, the shared consumer."""

    prefix: str = "usage"
    stream: str = "USAGE"
    consumer: str = "creditledger"

    @property
    def events(self) -> str:
        """The wildcard the stream captures."""
        return f"{self.prefix}.events.>"

    @property
    def rejected(self) -> str:
        return f"{self.prefix}.rejected"

    @property
    def rejected_stream(self) -> str:
        return f"{self.stream}_REJECTED"

    def subject(self, team_id: str) -> str:
        """The subject of a team's usage. Raises :class:`EventError` for a team id that
        can not be a subject token."""
        if not _TOKEN_RE.match(team_id):
            raise EventError("invalid_event", "`team_id` can not name a subject.")
        return f"{self.prefix}.events.{team_id}"

    def team_of(self, subject: str) -> str | None:
        """The team a usage subject names, None for any other subject."""
        head = f"{self.prefix}.events."
        if not subject.startswith(head):
            return None
        team = subject[len(head) :]
        return team if _TOKEN_RE.match(team) else None


def message_id(team_id: str, event_id: str) -> str:
    """The ``Nats-Msg-Id`` of a usage event."""
    return f"{team_id}:{event_id}"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as a consumer received it."""

    subject: str
    data: bytes
    msg_id: str | None
    """Its ``Nats-Msg-Id`` header; None when the publisher sent none."""
    reply: str
    """Where it is acknowledged (opaque to all but the stream adapter)."""
    stream_seq: int
    delivered: int
    """How many times it has been delivered; above 1, it is a redelivery."""
    pending: int
    """Messages in the stream after it that no worker has been given yet: the lag."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused message, published with its code to ``<prefix>.rejected``."""

    delivery: Delivery
    code: str
    message: str


def check_message(subject_team: str | None, msg_id: str | None, raw: object) -> None:
    """What the stream adds to the rules of an event (``domain.usage.parse_event`` checks
    the event itself): it is published on its own team's subject, and a ``Nats-Msg-Id``,
    when there is one, is ``<team_id>:<id>``. A missing id only costs the stream's
    deduplication (the database settles duplicates); a bare event id could make the
    stream drop another team's event."""
    if not isinstance(raw, dict):
        raise EventError(
            "invalid_event", "The message body must be one usage event, a JSON object."
        )
    team_id, event_id = raw.get("team_id"), raw.get("id")
    if isinstance(team_id, str) and team_id != subject_team:
        raise EventError(
            "subject_mismatch",
            "The event's `team_id` is not the team of its subject: publish it on "
            "`<prefix>.events.<team_id>`.",
        )
    if (
        msg_id is not None
        and isinstance(team_id, str)
        and isinstance(event_id, str)
        and msg_id != message_id(team_id, event_id)
    ):
        raise EventError(
            "message_id_mismatch",
            "`Nats-Msg-Id` must be `<team_id>:<id>` of the event it carries.",
        )
