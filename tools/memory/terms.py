"""Memory terms that training and inference share."""

from __future__ import annotations

from qkv.tools.inventory import TensorGroup
from qkv.tools.memory.dtypes import count
from qkv.tools.memory.schema import MemoryTerm


def dequantised_weight_term(groups: list[TensorGroup]) -> MemoryTerm:
    """A quantised (4-bit or int8) matmul dequantises its weight to the 16-bit compute dtype, one
    linear at a time: the transient is the largest quantised linear × 2 B."""
    largest = max((g.numel // g.repeat for g in groups if g.is_quantised), default=0)
    return MemoryTerm(name="dequantised weight (transient)", bytes=2 * largest,
                      formula=f"largest quantised linear {count(largest)} params × 2 B")
