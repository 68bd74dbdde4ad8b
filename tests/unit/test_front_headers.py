"""Which requests the paths in front of the framework may take, by their headers: one
plain bearer token, JSON, a declared length within bounds; any other goes to the
framework (None)."""

from __future__ import annotations

import pytest

from creditledger.entrypoints.api import fast_authorize, front
from creditledger.entrypoints.api.front import bearer_json

JSON = (b"content-type", b"application/json")
LENGTH = (b"content-length", b"120")
TOKEN = (b"authorization", b"Bearer cl_token")
PLAIN = [(b"host", b"x"), JSON, LENGTH, TOKEN]


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        (PLAIN, "cl_token"),
        ([*PLAIN, (b"accept", b"*/*"), (b"accept", b"text/plain")], "cl_token"),
        ([(b"content-type", b"Application/JSON; charset=utf-8"), LENGTH, TOKEN], "cl_token"),
        ([(b"content-type", b"text/plain"), JSON, LENGTH, TOKEN], "cl_token"),  # the last
        ([(b"authorization", b"bearer cl_token"), JSON, LENGTH], "cl_token"),
        ([*PLAIN, TOKEN], None),  # Authorization twice
        ([*PLAIN, (b"authorization", b"Bearer cl_other")], None),
        ([*PLAIN, (b"transfer-encoding", b"chunked")], None),
        ([JSON, TOKEN], None),  # no length
        ([JSON, (b"content-length", b"0"), TOKEN], None),
        ([JSON, (b"content-length", b"16385"), TOKEN], None),
        ([JSON, (b"content-length", b"-1"), TOKEN], None),
        ([JSON, (b"content-length", b"123456789"), TOKEN], None),
        ([(b"content-type", b"text/plain"), LENGTH, TOKEN], None),
        ([LENGTH, TOKEN], None),  # no content type
        ([JSON, LENGTH], None),  # no token
        ([JSON, LENGTH, (b"authorization", b"Basic abc")], None),
        ([JSON, LENGTH, (b"authorization", b"Bearer")], None),
        ([JSON, LENGTH, (b"authorization", b"Bearer a b")], None),
        ([JSON, LENGTH, (b"authorization", b"Bearer a\tb")], None),
        ([JSON, LENGTH, (b"authorization", "Bearer é".encode())], None),
    ],
)
def test_a_request_is_taken_in_front_only_when_plain(
    headers: list[tuple[bytes, bytes]], token: str | None
) -> None:
    assert bearer_json(headers, 16 * 1024) == token


def test_a_header_value_read_again_gives_the_same_answer() -> None:
    """Plain values are kept once read; a refused one is read again (and refused) each
    time, so a kept answer never stands in for a refusal."""
    for _ in range(3):
        assert bearer_json(PLAIN, 16 * 1024) == "cl_token"
        assert bearer_json([JSON, LENGTH, (b"authorization", b"Bearer a b")], 16 * 1024) is None
    assert front._tokens.get(b"Bearer cl_token") == "cl_token"
    assert b"Bearer a b" not in front._tokens


def test_plain_authorization_bodies_are_decoded_once_and_others_every_time() -> None:
    plain = b'{"team_id": "team_1", "product": "serverless", "model": "llama"}'
    first = fast_authorize._decoded(plain)
    assert first is not None and fast_authorize._decoded(plain) is first
    with_hold = (
        b'{"team_id": "team_1", "product": "serverless", "model": "llama", "request_id": "r1"}'
    )
    assert fast_authorize._decoded(with_hold) is not fast_authorize._decoded(with_hold)
    twice = b'{"team_id": "team_1", "team_id": "team_2", "product": "serverless", "model": "m"}'
    assert fast_authorize._decoded(twice) is None  # the route judges it, every time
    assert twice not in fast_authorize._bodies


@pytest.mark.parametrize(
    "body",
    [
        b'{"team_id": "t", "product": "serverless", "model": "m", "gpu": null, "gpu": null}',
        b'{"team_id": "t", "product": "serverless", "model": "model", "model": "m"}',
        b'{"team_id": "t", "product": "serverless", "model": "m", "request_id": "r",'
        b' "estimate": {"amount": "1", "amount": "2"}}',
        b'{"team_id": "t", "product": "serverless", "model": "m", "request_id": "r",'
        b' "estimate": {"quantities": {"requests": 1, "requests": 2}}}',
        b'{"team_id": "t", "product": "serverless", "model": "m",'
        b' "estimate": {"quantities": {"requests": [[["deep"]]]}}}',
    ],
)
def test_a_body_naming_a_key_twice_at_any_depth_is_left_to_the_route(body: bytes) -> None:
    assert fast_authorize._decoded(body) is None


def test_every_optional_field_a_body_names_is_counted_however_it_is_spaced() -> None:
    body = (
        b'{ "team_id" : "t" , "product":"serverless","model":"gpu", "gpu" : null,'
        b'"request_id":"team_id", "estimate": {"quantities": {"requests": 2, "x": 0}}}'
    )
    wire = fast_authorize._decoded(body)
    assert wire is not None
    assert (wire.model, wire.gpu, wire.request_id) == ("gpu", None, "team_id")
    assert wire.estimate == {"quantities": {"requests": 2, "x": 0}}
