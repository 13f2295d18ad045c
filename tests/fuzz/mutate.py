"""A seeded byte mutator: flips, truncations, splices and hostile insertions."""

from __future__ import annotations

import random

HOSTILE = [b'"', b"\n", b"\r", b",", b"\x00", b"\xff", b"\xef\xbb\xbf", b"[", b"{", b"}", b"\\", b'"\n"', b"\xed\xa0\x80", b"9" * 40]


def mutate(data: bytes, seed: int) -> bytes:
    """Return a damaged copy of ``data``; the same seed always gives the same damage."""
    rng = random.Random(seed)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf.extend(rng.choice(HOSTILE))
            continue
        op = rng.choice(("flip", "truncate", "splice", "insert", "delete"))
        pos = rng.randrange(len(buf))
        if op == "flip":
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del buf[pos:]
        elif op == "splice":
            start = rng.randrange(len(buf))
            piece = buf[start:start + rng.randint(1, 200)]
            buf[pos:pos] = piece
        elif op == "insert":
            buf[pos:pos] = rng.choice(HOSTILE)
        else:
            del buf[pos:pos + rng.randint(1, 50)]
    return bytes(buf)
