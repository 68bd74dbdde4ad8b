"""Who may touch a team's resources. Checked on every request, from the database."""

from __future__ import annotations

import enum

from creditledger.domain.accounts import Principal, Role, Team, TokenKind
from creditledger.domain.errors import Forbidden, NotFound
from creditledger.domain.ids import is_id
from creditledger.services.ports import UnitOfWork

TEAM_NOT_FOUND = "No team with this id, or you are not a member of it."


class Need(enum.Enum):
    MEMBER = "member"
    """Read the team's name and one's own role."""
    BILLING_READ = "billing_read"
    """Billing pages: team admins, and operators (audited)."""
    ADMIN = "admin"
    """Team admins only: members, redemptions, purchases."""
    OPERATOR = "operator"
    """Platform staff only."""


def system_operator(name: str) -> Principal:
    """An operator acting from the command line, where there is no token to present.

    ``token_id`` (``system:<name>``) is what records such as a promo code's
    ``created_by`` and the audit log remember; it never matches a stored token.
    """
    return Principal(TokenKind.OPERATOR, f"system:{name}", name=name, client="cli")


def require_operator(principal: Principal) -> None:
    if principal.kind is not TokenKind.OPERATOR:
        raise Forbidden("This action needs an operator token.")


def require_user(principal: Principal) -> str:
    if principal.user_id is None:
        raise Forbidden("This action needs a user's personal token.")
    return principal.user_id


def check_team_access(
    uow: UnitOfWork, principal: Principal, team_id: str, need: Need, *, lock: bool = False
) -> tuple[Team, Role | None]:
    """The team and the caller's role in it, or the error the caller must see.

    A team the caller can not see answers exactly like a missing one (404).
    ``lock`` takes the team's row lock for a write.
    """
    role = _role_allowed(uow, principal, team_id, need)
    team = uow.teams.lock(team_id) if lock else uow.teams.get(team_id)
    if team is None:
        raise NotFound(TEAM_NOT_FOUND)
    return team, role


def check_team_read(uow: UnitOfWork, principal: Principal, team_id: str, need: Need) -> None:
    """:func:`check_team_access` for a read that needs no team row: the same answers in
    one read, a member's role (a membership exists only for an existing team) or, for
    an operator, whether the team exists."""
    role = _role_allowed(uow, principal, team_id, need)
    if role is None and not uow.teams.exists(team_id):
        raise NotFound(TEAM_NOT_FOUND)


def _role_allowed(uow: UnitOfWork, principal: Principal, team_id: str, need: Need) -> Role | None:
    """The caller's role in the team (None for an operator) when ``need`` allows them;
    the error they must see otherwise. The team itself is left for the caller to find."""
    if need is Need.OPERATOR:
        require_operator(principal)
    if principal.kind is TokenKind.SERVICE:
        raise Forbidden("Service tokens can not use team endpoints.")
    if not is_id(team_id, "team"):
        raise NotFound(TEAM_NOT_FOUND)
    role: Role | None = None
    if principal.kind is TokenKind.PERSONAL:
        assert principal.user_id is not None
        role = uow.members.role_of(team_id, principal.user_id)
        if role is None:
            raise NotFound(TEAM_NOT_FOUND)
        if need in (Need.BILLING_READ, Need.ADMIN) and role is not Role.ADMIN:
            raise Forbidden("Only team admins can see or change Billing.")
    elif need is Need.ADMIN:
        raise Forbidden("Only the team's admins can do this.")
    return role
