"""The first numbers of many streams at once, bit for bit those of ``streams.stream``.

Creating a ``numpy.random.Generator`` costs tens of microseconds, which adds up when thousands
of customers each need their own overflow stream. The streams differ only in the last word of
their key, so numpy's ``SeedSequence`` hashing and ``PCG64`` (a 128-bit LCG with an XSL-RR
output) run here on arrays, one row per stream, in unsigned 32- and 64-bit arithmetic that
wraps as the C code does. A test holds the result equal to numpy's generators.
"""

from __future__ import annotations

import numpy as np

# numpy.random.SeedSequence constants (pool of four 32-bit words)
_POOL = 4
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_M32 = 0xFFFFFFFF
_M64 = (1 << 64) - 1
# PCG64's default 128-bit multiplier, high and low words
_MUL_HI, _MUL_LO = np.uint64(2549297995355413924), np.uint64(4865540595714422341)


def _words(n: int) -> list[int]:
    """An integer as SeedSequence reads it: 32-bit words, least significant first."""
    out = [n & _M32]
    n >>= 32
    while n:
        out.append(n & _M32)
        n >>= 32
    return out


class _Hash:
    """SeedSequence's running hash constant (the same for every row)."""

    def __init__(self, init: int, mult: int) -> None:
        self.const, self.mult = init, mult

    def mix(self, value: np.ndarray) -> np.ndarray:
        value = value ^ np.uint32(self.const)
        self.const = (self.const * self.mult) & _M32
        value = value * np.uint32(self.const)
        return value ^ (value >> np.uint32(16))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
    return r ^ (r >> np.uint32(16))


def _pool(entropy: list[np.ndarray]) -> list[np.ndarray]:
    """SeedSequence.mix_entropy over rows: ``entropy`` is a list of uint32 columns."""
    h = _Hash(_INIT_A, _MULT_A)
    zero = np.zeros_like(entropy[0])
    pool = [h.mix(entropy[i] if i < len(entropy) else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = _mix(pool[dst], h.mix(pool[src]))
    for src in range(_POOL, len(entropy)):
        for dst in range(_POOL):
            pool[dst] = _mix(pool[dst], h.mix(entropy[src]))
    return pool


def _mul64(a: np.ndarray, b: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """Full 128-bit product of uint64 arrays: (high, low)."""
    m32 = np.uint64(_M32)
    s32 = np.uint64(32)
    a_lo, a_hi = a & m32, a >> s32
    b_lo, b_hi = b & m32, b >> s32
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (p0 >> s32) + (p1 & m32) + (p2 & m32)
    return p3 + (p1 >> s32) + (p2 >> s32) + (mid >> s32), (p0 & m32) | (mid << s32)


def _step(hi, lo, inc_hi, inc_lo):
    """One LCG step: state * multiplier + increment, modulo 2**128."""
    carry_hi, new_lo = _mul64(lo, _MUL_LO)
    new_hi = carry_hi + lo * _MUL_HI + hi * _MUL_LO
    out_lo = new_lo + inc_lo
    out_hi = new_hi + inc_hi + (out_lo < new_lo).astype(np.uint64)
    return out_hi, out_lo


def uniforms(seed: int, key: tuple[int, ...], last: np.ndarray, count: int) -> np.ndarray:
    """(len(last), count) array: row j holds the first ``count`` numbers of
    ``stream(seed, *key, last[j])`` (``last`` below 2**32)."""
    with np.errstate(over="ignore"):
        run = _words(seed)
        spawn = [w for part in key for w in _words(part)]
        run += [0] * (_POOL - len(run))
        m = len(last)
        columns = [np.full(m, w, dtype=np.uint32) for w in run + spawn]
        columns.append(np.asarray(last, dtype=np.uint32))
        pool = _pool(columns)
        h = _Hash(_INIT_B, _MULT_B)
        state32 = [h.mix(pool[i % _POOL]) for i in range(8)]
        # four little-endian 64-bit words: seed (high, low), increment (high, low)
        w64 = [
            state32[2 * i].astype(np.uint64) | (state32[2 * i + 1].astype(np.uint64) << 32)
            for i in range(4)
        ]
        one = np.uint64(1)
        inc_hi = (w64[2] << one) | (w64[3] >> np.uint64(63))
        inc_lo = (w64[3] << one) | one
        zero = np.zeros(m, dtype=np.uint64)
        hi, lo = _step(zero, zero, inc_hi, inc_lo)
        lo2 = lo + w64[1]
        hi = hi + w64[0] + (lo2 < lo).astype(np.uint64)
        hi, lo = _step(hi, lo2, inc_hi, inc_lo)
        out = np.empty((m, count))
        for j in range(count):
            hi, lo = _step(hi, lo, inc_hi, inc_lo)
            rot = hi >> np.uint64(58)
            x = hi ^ lo
            word = (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))
            out[:, j] = (word >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return out
