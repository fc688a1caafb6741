"""Count the maximal byte runs of one word pass, mostly inside numpy (which releases the GIL).

The word counter's passes cut UTF-8 text into maximal runs of bytes that belong to a class (ASCII word
bytes or ASCII symbol bytes, plus every non-ASCII byte). Splitting them into Python `bytes` and counting
with `collections.Counter` holds the GIL for the whole batch, which stalls the encoder threads the auditor
runs beside it. Here a run of at most 15 ASCII bytes (~98 % of runs in code and prose) is packed exactly
into two uint64: its bytes, zero-padded, and its length in the top byte. A batch's equal runs are grouped
by sorting a 64-bit mix of the pair, and every group is checked against its representative's exact pair,
so a hash collision cannot merge two runs (on one, the batch's short runs are grouped by an exact sort).
Batches' (pair, count) arrays are merged by an exact sort now and then; only the distinct runs ever become
Python bytes. Longer runs and runs with non-ASCII bytes are counted as Python bytes."""

from __future__ import annotations

from collections import Counter

import numpy as np

SHORT = 15  # longest run packed into (lo, hi): 8 + 7 bytes, the 8th byte of hi holds the length
_MASK = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)  # low k bytes
_K1 = np.uint64(0x9E3779B97F4A7C15)  # odd multipliers (golden ratio, xxhash prime) that mix lo and hi
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_LEN_SHIFT = np.uint64(56)


class Packed:
    """One text's bytes as numpy views, shared by both passes: the bytes, an 8-byte little-endian window at
    every offset (zero-padded past the end), and a running count of non-ASCII bytes (None for ASCII text)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.array = np.frombuffer(data, dtype=np.uint8)
        n = self.array.size
        padded = np.zeros(n + 24, dtype=np.uint8)
        padded[:n] = self.array
        self.window = np.ndarray((n + 9,), dtype="<u8", buffer=padded, strides=(1,))  # window[i] = bytes i..i+7
        self.non_ascii: np.ndarray | None = None
        if not data.isascii():
            self.non_ascii = np.zeros(n + 1, dtype=np.int32)
            np.cumsum(self.array >= 0x80, out=self.non_ascii[1:])


class RunCounter:
    """Counts of the maximal runs of bytes b with inside[b] (bool[256]), over any number of texts."""

    def __init__(self, inside: np.ndarray) -> None:
        self.inside = inside
        self.long: Counter[bytes] = Counter()  # runs > SHORT bytes or with non-ASCII bytes
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (lo, hi, count) per batch
        self._merged = 0  # entries in _parts[0] after the last merge
        self._pending = 0  # entries added since

    def __len__(self) -> int:
        """Distinct runs held, or an upper bound between merges."""
        return self._merged + self._pending + len(self.long)

    def add(self, text: Packed) -> None:
        a, n = text.array, text.array.size
        if n == 0:
            return
        edge = np.diff(self.inside[a].view(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
        lens = ends - starts
        short = lens <= SHORT
        if text.non_ascii is not None:
            short &= text.non_ascii[ends] == text.non_ascii[starts]
        s, length = starts[short], lens[short]
        if s.size:
            lo = text.window[s] & _MASK[np.minimum(length, 8)]
            hi = (text.window[s + 8] & _MASK[np.clip(length - 8, 0, 8)]) | (length.astype(np.uint64) << _LEN_SHIFT)
            self._push(*_group_fast(lo, hi))
        rest = np.flatnonzero(~short)
        data = text.data
        self.long.update([data[i:j] for i, j in zip(starts[rest].tolist(), ends[rest].tolist(), strict=True)])

    def _push(self, lo: np.ndarray, hi: np.ndarray, count: np.ndarray) -> None:
        self._parts.append((lo, hi, count))
        self._pending += lo.size
        if self._pending > max(self._merged, 1 << 16):  # merge when the parts outgrow the merged table
            self._merge()

    def _merge(self) -> None:
        if len(self._parts) > 1:
            lo, hi, count = (np.concatenate(x) for x in zip(*self._parts, strict=True))
            self._parts = [_group_exact(lo, hi, count)]
        self._merged = self._parts[0][0].size if self._parts else 0
        self._pending = 0

    def pop_rare(self) -> dict[bytes, int]:
        """Remove and return the runs seen once."""
        self._merge()
        rare = {r: 1 for r, n in self.long.items() if n == 1}
        for r in rare:
            del self.long[r]
        if self._parts:
            lo, hi, count = self._parts[0]
            once = count == 1
            rare.update(dict.fromkeys(_unpack(lo[once], hi[once]), 1))
            self._parts = [(lo[~once], hi[~once], count[~once])]
            self._merged = int((~once).sum())
        return rare

    def items(self) -> dict[bytes, int]:
        """Every run with its count."""
        self._merge()
        out = dict(self.long)
        if self._parts:
            lo, hi, count = self._parts[0]
            out.update(zip(_unpack(lo, hi), count.tolist(), strict=True))  # packed runs never collide with long
        return out


def _group_fast(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (lo, hi) pairs with their counts, by sorting one 64-bit mix; exact (checked)."""
    mixed = lo * _K1 ^ hi * _K2  # wraps mod 2**64
    order = np.argsort(mixed)
    mixed = mixed[order]
    first = np.flatnonzero(np.concatenate(([True], mixed[1:] != mixed[:-1])))
    count = np.diff(np.append(first, mixed.size))
    rep = order[first]
    group = np.repeat(np.arange(first.size), count)
    if np.array_equal(lo[order], lo[rep][group]) and np.array_equal(hi[order], hi[rep][group]):
        return lo[rep], hi[rep], count
    return _group_exact(lo, hi, np.ones(lo.size, dtype=np.int64))  # a 64-bit collision: sort the pairs exactly


def _group_exact(lo: np.ndarray, hi: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (lo, hi) pairs with their summed counts, by an exact two-key sort."""
    if lo.size == 0:
        return lo, hi, count
    order = np.lexsort((lo, hi))
    lo, hi, count = lo[order], hi[order], count[order]
    first = np.flatnonzero(np.concatenate(([True], (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1]))))
    return lo[first], hi[first], np.add.reduceat(count, first)


def _unpack(lo: np.ndarray, hi: np.ndarray) -> list[bytes]:
    """The runs packed in (lo, hi): 16 little-endian bytes per run, the last holding its length."""
    raw = np.stack([lo, hi], axis=1).astype("<u8").view(np.uint8).reshape(-1, 16)
    lengths = raw[:, 15].tolist()
    blob = raw.tobytes()
    return [blob[16 * i:16 * i + n] for i, n in enumerate(lengths)]
