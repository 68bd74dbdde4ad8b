"""Page cursors: opaque, tamper-proof and bound to the list they page through.

A cursor carries the keyset position of the last item shown (a ledger sequence, a
grant id …), so the next page is still one index range scan. The position is sealed
with AES-SIV under a key derived from a secret kept per database, with the list's
name and owner (e.g. ``history`` and the team id) as associated data:

- nobody can read a position out of a cursor (global sequence numbers would tell how
  busy the whole platform is);
- a changed, made-up or truncated cursor fails authentication (``invalid_cursor``);
- a cursor of one team's list, or of another list, is refused for any other.

AES-SIV is deterministic, so the same position always gives the same cursor, and it
needs no nonce that could repeat. Every process of a deployment derives the same key
from the database's secret, so cursors work across processes and restarts.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from creditledger.domain.errors import InvalidCursor

MAX_SEQ = 2**63 - 1
"""Sequences are signed 64-bit on both backends; a larger one was never given out."""
MAX_CURSOR_LENGTH = 200
_BASE64URL = re.compile(r"\A[A-Za-z0-9_-]+\Z")
_VERSION = b"c1"


def _refused() -> InvalidCursor:
    return InvalidCursor("`cursor` is not one this API gave out.", param="cursor")


class CursorCodec:
    """Seals and opens cursors with one deployment's key."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the cursor secret must hold at least 32 characters")
        key = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=None, info=b"creditledger cursors"
        ).derive(secret.encode())
        self._siv = AESSIV(key)

    def seal(self, kind: str, owner: str, position: bytes) -> str:
        """The cursor for ``position`` in the list ``kind`` of ``owner``."""
        sealed = self._siv.encrypt(position, [_VERSION, kind.encode(), owner.encode()])
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, kind: str, owner: str, cursor: str) -> bytes:
        """The position a cursor of this list stands for; anything else is refused."""
        if not 0 < len(cursor) <= MAX_CURSOR_LENGTH or not _BASE64URL.match(cursor):
            raise _refused()
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            return self._siv.decrypt(sealed, [_VERSION, kind.encode(), owner.encode()])
        except (binascii.Error, ValueError, InvalidTag):
            raise _refused() from None

    def seal_seq(self, kind: str, owner: str, seq: int) -> str:
        """:meth:`seal` for a 64-bit sequence number."""
        return self.seal(kind, owner, seq.to_bytes(8, "big"))

    def open_seq(self, kind: str, owner: str, cursor: str) -> int:
        position = self.open(kind, owner, cursor)
        if len(position) != 8:
            raise _refused()
        seq = int.from_bytes(position, "big")
        if seq > MAX_SEQ:
            raise _refused()
        return seq


@lru_cache(maxsize=8)
def codec_for(secret: str) -> CursorCodec:
    """The codec of a deployment's secret, made once per process (deriving its key)."""
    return CursorCodec(secret)
