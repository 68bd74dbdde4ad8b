"""Idempotency-Key headers and request fingerprints (docs/api.md, Conventions)."""

from __future__ import annotations

import pytest

from creditledger.domain.errors import BadIdempotencyKey, MissingIdempotencyKey
from creditledger.services.idempotency import check_key, request_fingerprint


def test_a_missing_key_is_its_own_error() -> None:
    with pytest.raises(MissingIdempotencyKey) as caught:
        check_key(None)
    assert caught.value.code == "idempotency_key_required"


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there", "é", "nul\x00", "line\n"])
def test_a_key_must_be_1_to_255_printable_ascii_characters(key: str) -> None:
    with pytest.raises(BadIdempotencyKey) as caught:
        check_key(key)
    assert caught.value.code == "invalid_idempotency_key"


@pytest.mark.parametrize("key", ["a", "k" * 255, "order 42/retry~1"])
def test_printable_ascii_keys_up_to_255_characters_are_accepted(key: str) -> None:
    assert check_key(key) == key


def test_fingerprints_tell_apart_bodies_that_concatenate_alike() -> None:
    assert request_fingerprint(b"ab", b"c") != request_fingerprint(b"a", b"bc")
    assert request_fingerprint(b"x") == request_fingerprint(b"x")
