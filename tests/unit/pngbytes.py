"""PNG files built chunk by chunk, for tests that need exact (or exactly broken) bytes."""

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One chunk: length, kind, payload and a valid CRC."""
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG file of these (kind, payload) chunks, CRCs made valid."""
    return SIGNATURE + b"".join(png_chunk(kind, payload) for kind, payload in chunks)


def chunks_of(data: bytes) -> list[tuple[bytes, bytes]]:
    """The (kind, payload) chunks of a PNG file."""
    found, pos = [], len(SIGNATURE)
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        found.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return found
