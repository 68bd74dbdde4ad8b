"""Users, teams, memberships and who may do what (SPEC §1)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from creditledger.domain.errors import InvalidRequest


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
    lifetime_paid: int
    unpaid: int
    created_at: datetime
    revision: int = 0
    """Changes with every write that can change an authorization decision."""


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
