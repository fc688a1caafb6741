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
_TINY_SLOTS = 3 << 16  # key of a run of 1-2 bytes: its bytes (little-endian) | length << 16


class Packed:
    """One text's bytes as numpy views, shared by both passes: the bytes, an 8-byte little-endian window at
    every offset (zero-padded past the end), and a running count of non-ASCII bytes (None for ASCII text)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.padded = b" " + data + b" "  # a space (outside every class) at both ends, for run edges
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
        self._table = bytes(inside.astype(np.uint8).tolist())  # byte -> 1 inside, 0 outside (bytes.translate)
        self.long: Counter[bytes] = Counter()  # runs > SHORT bytes or with non-ASCII bytes
        self._tiny = np.zeros(_TINY_SLOTS, dtype=np.int64)  # count per run of <= 2 ASCII bytes, by _tiny key
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (lo, hi, count) per batch
        self._merged = 0  # entries in _parts[0] after the last merge
        self._pending = 0  # entries added since

    def __len__(self) -> int:
        """Distinct runs held, or an upper bound between merges."""
        return self._merged + self._pending + len(self.long) + int(np.count_nonzero(self._tiny))

    def add(self, text: Packed) -> None:
        if text.array.size == 0:
            return
        # runs start and end where membership flips; padded with False at both ends, so flips alternate.
        # bytes.translate is the fastest byte lookup there is (~5x numpy's take on uint8 indices).
        member = np.frombuffer(text.padded.translate(self._table), dtype=bool)
        flips = np.flatnonzero(member[1:] != member[:-1])
        starts, ends = flips[0::2], flips[1::2]
        lens = ends - starts
        short = lens <= SHORT
        if text.non_ascii is not None:
            short &= text.non_ascii[ends] == text.non_ascii[starts]
        s, length = starts[short], lens[short]
        if s.size:
            # Runs of 1-2 bytes (~half of all runs: punctuation, 'a', 'if', 'of') are counted by a direct
            # index; runs of 3-7 bytes fit one uint64 with their length in the top byte, an exact key that is
            # sorted as is; only runs of 8-15 bytes need the pair and its mix.
            w = text.window[s] & _MASK[np.minimum(length, 8)]
            tiny, small = length <= 2, (length > 2) & (length < 8)
            self._tiny += np.bincount(w[tiny].astype(np.int64) | (length[tiny] << 16), minlength=_TINY_SLOTS)
            if small.any():
                self._push(*_group_small(w[small] | (length[small].astype(np.uint64) << _LEN_SHIFT)))
            big = length >= 8
            if big.any():
                s, length = s[big], length[big]
                hi = (text.window[s + 8] & _MASK[length - 8]) | (length.astype(np.uint64) << _LEN_SHIFT)
                self._push(*_group_fast(w[big], hi))
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
        once = np.flatnonzero(self._tiny == 1)
        lo, hi = _tiny_pairs(once)
        self._tiny[once] = 0
        if self._parts:
            plo, phi, count = self._parts[0]
            keep = count != 1
            lo, hi = np.concatenate((lo, plo[~keep])), np.concatenate((hi, phi[~keep]))
            self._parts = [(plo[keep], phi[keep], count[keep])]
            self._merged = int(keep.sum())
        rare.update(dict.fromkeys(map(str.encode, _decode(lo, hi)), 1))
        return rare

    def short_runs(self) -> tuple[list[str], list[int]]:
        """The runs of at most SHORT ASCII bytes, decoded, with their counts (the rest are in `long`)."""
        self._merge()
        seen = np.flatnonzero(self._tiny)
        lo, hi = _tiny_pairs(seen)
        counts = self._tiny[seen]
        if self._parts:
            lo, hi, counts = (np.concatenate(x) for x in zip((lo, hi, counts), self._parts[0], strict=True))
        return _decode(lo, hi), counts.tolist()

    def items(self) -> dict[bytes, int]:
        """Every run with its count (the stores hold disjoint runs: by length and by ASCII-ness)."""
        short, counts = self.short_runs()
        return dict(self.long) | dict(zip(map(str.encode, short), counts, strict=True))


def _tiny_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (lo, hi) pairs of runs of 1-2 bytes from their _tiny keys (bytes | length << 16)."""
    keys = keys.astype(np.uint64)
    return keys & np.uint64(0xFFFF), (keys >> np.uint64(16)) << _LEN_SHIFT


def _decode(lo: np.ndarray, hi: np.ndarray) -> list[str]:
    """The ASCII runs packed in (lo, hi), as str, in one numpy pass: each 16-byte row keeps its first
    `length` bytes plus a newline (no run holds one: it is a space), and the blob is decoded and split once."""
    if lo.size == 0:
        return []
    raw = np.stack([lo, hi], axis=1).astype("<u8").view(np.uint8).reshape(-1, 16).copy()
    lengths = raw[:, 15].astype(np.intp)
    raw[np.arange(len(raw)), lengths] = 0x0A  # a 15-byte run's newline overwrites its length byte
    return raw[np.arange(16) <= lengths[:, None]].tobytes().decode("ascii").split("\n")[:-1]


def _group_small(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct runs of 3-7 bytes with their counts, from keys = bytes | length << 56 (exact: a plain sort)."""
    keys = np.sort(keys)
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    count = np.diff(np.append(first, keys.size))
    keys = keys[first]
    return keys & _MASK[7], keys & ~_MASK[7], count


def _group_fast(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (lo, hi) pairs with their counts, by sorting one 64-bit mix; exact (checked)."""
    mixed = lo * _K1 ^ hi * _K2  # wraps mod 2**64
    order = np.argsort(mixed)
    mixed, lo, hi = mixed[order], lo[order], hi[order]
    same_mix = mixed[1:] == mixed[:-1]
    # equal mixes are adjacent after the sort: the groups are exact iff adjacent pairs are equal exactly
    # where their mixes are (equal pairs always mix equally)
    if np.array_equal(same_mix, (lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])):
        first = np.flatnonzero(np.concatenate(([True], ~same_mix)))
        return lo[first], hi[first], np.diff(np.append(first, mixed.size))
    return _group_exact(lo, hi, np.ones(lo.size, dtype=np.int64))  # a 64-bit collision: sort the pairs exactly


def _group_exact(lo: np.ndarray, hi: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (lo, hi) pairs with their summed counts, by an exact two-key sort."""
    if lo.size == 0:
        return lo, hi, count
    order = np.lexsort((lo, hi))
    lo, hi, count = lo[order], hi[order], count[order]
    first = np.flatnonzero(np.concatenate(([True], (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1]))))
    return lo[first], hi[first], np.add.reduceat(count, first)
