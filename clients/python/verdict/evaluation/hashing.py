"""GrowthBook's deterministic hash: FNV-1a 32-bit over a string, mapped to [0, 1).

The reference hashes a JavaScript string, i.e. its UTF-16 code units, one XOR per unit. For ASCII
text that is the same as hashing its bytes, which the C extension `fnv_hash_fast` does fast; any
other text goes through the pure-Python loop over UTF-16 code units, so that non-ASCII ids land in
the same bucket as in the JavaScript SDK.
"""

from __future__ import annotations

from collections.abc import Callable

try:
    import fnv_hash_fast

    _fast_fnv1a_32: Callable[[bytes], int] | None = fnv_hash_fast.fnv1a_32
except ImportError:  # pragma: no cover - exercised only without the C extension
    _fast_fnv1a_32 = None

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def _fnv1a_32_units(text: str) -> int:
    data = text.encode("utf-16-le")
    hval = _FNV_OFFSET
    for i in range(0, len(data), 2):
        hval = ((hval ^ (data[i] | data[i + 1] << 8)) * _FNV_PRIME) & _MASK
    return hval


def _fnv1a_32_ascii(text: str) -> int:
    hval = _FNV_OFFSET
    for byte in text.encode("ascii"):
        hval = ((hval ^ byte) * _FNV_PRIME) & _MASK
    return hval


def fnv1a_32(text: str) -> int:
    """FNV-1a 32-bit of `text` as JavaScript's `hashFnv32a` computes it (UTF-16 code units)."""
    if text.isascii():
        if _fast_fnv1a_32 is not None:
            return _fast_fnv1a_32(text.encode("ascii"))
        return _fnv1a_32_ascii(text)
    return _fnv1a_32_units(text)


def hash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's hash of `value` under `seed`, in [0, 1); None for an unknown version.

    Version 2: `(fnv(str(fnv(seed + value))) % 10000) / 10000`. Version 1 (legacy, also used for
    namespaces): `(fnv(value + seed) % 1000) / 1000`.
    """
    if version == 2:
        return (fnv1a_32(str(fnv1a_32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a_32(value + seed) % 1000) / 1000
    return None


def make_hasher(seed: str, version: int) -> Callable[[str], float | None]:
    """A one-argument `hash(seed, value, version)` with the common case inlined, for hot paths."""
    fast = _fast_fnv1a_32
    if version != 2 or fast is None:
        return lambda value: hash(seed, value, version)

    def hash_v2(value: str) -> float | None:
        text = seed + value
        if text.isascii():
            return (fast(str(fast(text.encode("ascii"))).encode("ascii")) % 10000) / 10000
        return hash(seed, value, 2)

    return hash_v2
