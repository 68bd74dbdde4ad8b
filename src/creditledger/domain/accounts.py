"""Users, teams, memberships and who may do what."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from creditledger.domain.cursors import CursorCodec
from creditledger.domain.errors import InvalidCursor, InvalidRequest
from creditledger.domain.grants import Grant
from creditledger.domain.ids import is_id
from creditledger.domain.money import Nanos
from creditledger.domain.pricing import TeamPricing
from creditledger.domain.throttle import minutes


class Role(enum.StrEnum):
    ADMIN = "admin"
    MEMBER = "member"


class TokenKind(enum.StrEnum):
    PERSONAL = "personal"
    OPERATOR = "operator"
    SERVICE = "service"


class BillingMode(enum.StrEnum):
    PREPAID = "prepaid"
    PAY_AS_YOU_GO = "pay_as_you_go"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (personal token), an operator or a platform service."""

    kind: TokenKind
    token_id: str
    user_id: str | None = None
    name: str | None = None
    """The token's name (operator and service tokens are named when made)."""
    client: str | None = None
    """Where the call comes from: the client address over HTTP, ``cli`` from the
    command line, None when unknown. Throttles and the audit log use it."""

    @property
    def caller_id(self) -> str:
        """The identity Idempotency-Keys are scoped to."""
        return self.user_id if self.user_id is not None else self.token_id


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    billing_mode: BillingMode
    tier_level_override: int | None
    lifetime_paid: Nanos
    unpaid: Nanos
    created_at: datetime
    revision: int = 0
    """Changes with every write that can change an authorization decision."""


@dataclass(frozen=True, slots=True)
class TeamReads:
    """What an authorization decision reads of some teams, in one go."""

    teams: dict[str, Team]
    """The teams that exist among those asked for."""
    price_version: int | None
    """The newest price book version id (0: none; None when no team exists)."""
    grants: dict[str, list[Grant]]
    """Each team's grants, in the order of consumption ([] for a team that is not)."""
    pricing: dict[str, list[TeamPricing]]
    """Each team's own pricing versions."""


def after_payment(team: Team, amount: Nanos) -> Team:
    """The team once a payment of ``amount`` has succeeded: its lifetime
    paid grows by it (the tier follows, ``domain.tiers.tier_for``), and its first
    payment switches a prepaid team to pay-as-you-go. A mode an operator set after
    that first payment is kept."""
    first = team.lifetime_paid == 0
    mode = team.billing_mode
    if first and mode is BillingMode.PREPAID:
        mode = BillingMode.PAY_AS_YOU_GO
    return replace(team, billing_mode=mode, lifetime_paid=team.lifetime_paid + amount)


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    email: str
    role: Role
    created_at: datetime


_EMAIL_RE = re.compile(
    r"\A[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253})\.[A-Za-z]{2,63}\Z"
)
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


def normalise_email(raw: str) -> str:
    email = raw.strip().lower()
    if not _EMAIL_RE.match(email) or not email.isascii():
        raise InvalidRequest(
            "`email` must be an email address such as ada@example.com.", param="email"
        )
    return email


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"`password` must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters.",
            param="password",
        )


def check_team_name(name: str) -> str:
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= 200 or not cleaned.isprintable():
        raise InvalidRequest("`name` must be 1 to 200 printable characters.", param="name")
    return cleaned


def admins_left_after(members: list[Member], user_id: str, new_role: Role | None) -> int:
    """How many admins the team would have if ``user_id`` took ``new_role`` (None: removed)."""
    count = 0
    for m in members:
        role = new_role if m.user_id == user_id else m.role
        if role is Role.ADMIN:
            count += 1
    return count


def login_throttled_message(retry_after: int) -> str:
    """The same words whichever budget ran out, and whether or not the account exists."""
    return (
        "Too many failed sign-in attempts. Check the email and password and try again "
        f"in {minutes(retry_after)}."
    )


def signup_throttled_message(retry_after: int) -> str:
    return f"Too many sign-ups from this network. Try again in {minutes(retry_after)}."


MEMBERS = "members"
"""The list name member-list cursors are sealed for (``domain.cursors``)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MEMBER_POSITION = re.compile(r"\A(?P<micros>[0-9]{1,19}):(?P<user>[a-z0-9_]{1,40})\Z")


def encode_member_cursor(codec: CursorCodec, team_id: str, member: Member) -> str:
    """The cursor after ``member`` in the team's list (joined, then user id)."""
    micros = (member.created_at - _EPOCH) // timedelta(microseconds=1)
    return codec.seal(MEMBERS, team_id, f"{micros}:{member.user_id}".encode())


def decode_member_cursor(codec: CursorCodec, team_id: str, cursor: str) -> tuple[datetime, str]:
    """(joined at, user id) of the last member of the previous page of this team's list."""
    match = _MEMBER_POSITION.match(codec.open(MEMBERS, team_id, cursor).decode("ascii", "replace"))
    if match is None or not is_id(match.group("user"), "user"):
        raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor")
    try:
        joined = _EPOCH + timedelta(microseconds=int(match.group("micros")))
    except OverflowError:
        raise InvalidCursor("`cursor` is not one this API gave out.", param="cursor") from None
    return joined, match.group("user")
