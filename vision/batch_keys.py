"""The limits of a batch item's key, shared by the API (which refuses longer keys) and the
CLI (which names files and manifest lines by key and must not send a key the API refuses)."""

from __future__ import annotations

# A key's most UTF-8 bytes. Characters are not the measure: the unique index on
# (batch_id, key) holds bytes, and PostgreSQL's btree refuses index rows over 2704 bytes, so
# 1,024 characters of 4-byte text would fail the insert.
MAX_ITEM_KEY_BYTES = 1024


def key_bytes(key: str) -> int:
    """How many UTF-8 bytes ``key`` takes (a lone surrogate counts as 3: refused anyway)."""
    return len(key.encode("utf-8", "surrogatepass"))
