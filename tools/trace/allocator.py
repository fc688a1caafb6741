"""A model of PyTorch's CUDA caching allocator, replayed over a trace's alloc/free log, so a traced
peak can be stated both as *allocated* (what torch.cuda.max_memory_allocated reports) and as
*reserved* (segments the allocator holds from the driver: max_memory_reserved).

Rules modelled (c10/cuda/CUDACachingAllocator.cpp): requests round up to 512 B; requests of at most
1 MiB come from the small pool, carved out of 2 MiB segments; larger ones from the large pool, with
20 MiB segments for requests under 10 MiB and, above that, a segment of the request rounded up to
2 MiB. A cached free block is reused best-fit and split when the remainder is worth keeping (small
pool: any remainder; large pool: remainder over 1 MiB). Freed blocks merge with free neighbours.
Segments are never returned (no empty_cache), so reserved only grows."""

from __future__ import annotations

from dataclasses import dataclass

KIB, MIB = 1024, 1024 * 1024
SMALL_SIZE = 1 * MIB
SMALL_SEGMENT = 2 * MIB
LARGE_SEGMENT = 20 * MIB
MIN_LARGE_ALLOC = 10 * MIB
ROUND_LARGE = 2 * MIB


def round_size(n: int) -> int:
    return 512 if n < 512 else (n + 511) // 512 * 512


def segment_size(n: int) -> int:
    if n <= SMALL_SIZE:
        return SMALL_SEGMENT
    if n < MIN_LARGE_ALLOC:
        return LARGE_SEGMENT
    return (n + ROUND_LARGE - 1) // ROUND_LARGE * ROUND_LARGE


@dataclass
class AllocatorPeaks:
    allocated: int  # peak of rounded live bytes
    reserved: int  # peak of segment bytes held


def replay(events: list[tuple[int, int]]) -> AllocatorPeaks:
    """Replay (+bytes, key) allocations and (-bytes, key) frees through the caching allocator."""
    free: dict[bool, list[list[int]]] = {True: [], False: []}  # small? -> [segment, offset, size]
    blocks: dict[int, tuple[bool, int, int, int]] = {}  # key -> (small, segment, offset, size)
    segments = 0
    allocated = reserved = peak_alloc = 0
    for signed, key in events:
        if signed > 0:
            size = round_size(signed)
            small = size <= SMALL_SIZE
            pool = free[small]
            best = None
            for i, (_, _, bsize) in enumerate(pool):
                if bsize >= size and (best is None or bsize < pool[best][2]):
                    best = i
            if best is None:
                seg = segment_size(size)
                segments += 1
                reserved += seg
                pool.append([segments, 0, seg])
                best = len(pool) - 1
            seg_id, offset, bsize = pool[best]
            remainder = bsize - size
            if remainder > 0 and (small or remainder > SMALL_SIZE):
                pool[best] = [seg_id, offset + size, remainder]
                used = size
            else:
                pool.pop(best)
                used = bsize
            blocks[key] = (small, seg_id, offset, used)
            allocated += size
            peak_alloc = max(peak_alloc, allocated)
        else:
            if key not in blocks:
                continue
            small, seg_id, offset, used = blocks.pop(key)
            allocated -= round_size(-signed)
            pool = free[small]
            start, end = offset, offset + used
            for blk in [b for b in pool if b[0] == seg_id and (b[1] + b[2] == start or b[1] == end)]:
                pool.remove(blk)
                start, end = min(start, blk[1]), max(end, blk[1] + blk[2])
            pool.append([seg_id, start, end - start])
    return AllocatorPeaks(allocated=peak_alloc, reserved=reserved)
