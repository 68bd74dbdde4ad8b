"""List cursors are opaque and sealed per database: they show no ledger sequence, work
in every process of the deployment and after a restart, and are refused when changed
or used for another team's list."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from creditledger.adapters.db import tables
from creditledger.bootstrap import build_context
from creditledger.entrypoints.api.app import create_app
from creditledger.services.context import Context
from tests.conftest import make_settings
from tests.helpers import Account, Platform, bearer, error_code, sign_up

LISTS = ["credits", "credit-history"]


def _busy_team(client: TestClient, ctx: Context) -> Account:
    platform = Platform.on(client, ctx)
    team = sign_up(client)
    for _ in range(3):
        platform.promo(team.team_id, "1.00")
    return team


def _walk(client: TestClient, team: Account, path: str) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    cursors: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        response = client.get(f"/v1/teams/{team.team_id}/{path}", params=params, headers=team.auth)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["data"]]
        if page["next_cursor"] is None:
            return ids, cursors
        cursors.append(page["next_cursor"])
        params["cursor"] = page["next_cursor"]


def _forms(seq: int) -> list[bytes]:
    """How a position could show in a cursor's bytes. Sealed bytes are random-looking, so
    a pattern of 2 or 3 bytes turns up in them by chance (``:7`` in about one 60-byte
    cursor in a thousand, per sequence): the text form is looked for only from 4 bytes."""
    forms = [seq.to_bytes(8, "big"), seq.to_bytes(8, "little")]
    text = f":{seq}".encode()
    return [*forms, text] if len(text) >= 4 else forms


def _raw(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


@pytest.mark.parametrize("path", LISTS)
def test_cursors_page_through_everything_without_showing_positions(
    client: TestClient, ctx: Context, path: str
) -> None:
    team = _busy_team(client, ctx)
    engine = sa.create_engine(ctx.settings.database_url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        seqs = conn.execute(sa.select(tables.postings.c.seq)).scalars().all()
        grant_ids = conn.execute(sa.select(tables.grants.c.id)).scalars().all()
    engine.dispose()

    ids, cursors = _walk(client, team, path)

    assert len(ids) == len(set(ids)) == 4
    assert len(cursors) == 3
    for cursor in cursors:
        raw = _raw(cursor)
        assert not any(form in raw for seq in seqs for form in _forms(seq))
        assert not any(g in cursor or g.encode() in raw for g in grant_ids)


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_of_one_team_is_refused_for_another(
    client: TestClient, ctx: Context, path: str
) -> None:
    team = _busy_team(client, ctx)
    other = _busy_team(client, ctx)
    _, cursors = _walk(client, team, path)

    response = client.get(
        f"/v1/teams/{other.team_id}/{path}", params={"cursor": cursors[0]}, headers=other.auth
    )

    assert (response.status_code, error_code(response)) == (400, "invalid_cursor")


@pytest.mark.parametrize("path", LISTS)
def test_a_changed_cursor_is_refused(client: TestClient, ctx: Context, path: str) -> None:
    team = _busy_team(client, ctx)
    _, cursors = _walk(client, team, path)
    raw = bytearray(_raw(cursors[0]))
    raw[-1] ^= 0x01
    changed = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")

    response = client.get(
        f"/v1/teams/{team.team_id}/{path}", params={"cursor": changed}, headers=team.auth
    )

    assert (response.status_code, error_code(response)) == (400, "invalid_cursor")


@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_works_in_another_process_and_after_a_restart(
    client: TestClient, ctx: Context, database_url: str, path: str
) -> None:
    team = _busy_team(client, ctx)
    _, cursors = _walk(client, team, path)
    expected = client.get(
        f"/v1/teams/{team.team_id}/{path}", params={"cursor": cursors[0]}, headers=team.auth
    ).json()

    restarted = build_context(make_settings(database_url), clock=ctx.clock)
    try:
        with TestClient(create_app(restarted)) as other_process:
            answer = other_process.get(
                f"/v1/teams/{team.team_id}/{path}",
                params={"cursor": cursors[0]},
                headers=bearer(team.token),
            )
    finally:
        restarted.uow.dispose()

    assert answer.status_code == 200, answer.text
    assert answer.json() == expected
