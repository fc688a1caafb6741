"""A TorchDispatchMode that records every op output's storage: its bytes, the phase and module that
created it, and when it is freed. Peaks are exact counts of live tensor bytes (no allocator).

Storages are deduplicated by their Python object, which PyTorch preserves for as long as the
storage lives (views share it), and `weakref.finalize` reports the free."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@dataclass
class Record:
    """One storage: its size, and where it came from."""

    nbytes: int
    phase: str
    module: str | None


@dataclass
class MemoryTracker(TorchDispatchMode):
    """Running and peak live bytes; a snapshot of the live storages at the peak; an alloc/free log
    (for the allocator model)."""

    phase: str = "setup"
    live: dict[int, Record] = field(default_factory=dict)
    current: int = 0
    peak: int = 0
    peak_phase: str = "setup"
    peak_live: dict[int, Record] = field(default_factory=dict)
    phase_peaks: dict[str, int] = field(default_factory=dict)
    events: list[tuple[int, int]] = field(default_factory=list)  # (+nbytes | -nbytes, storage key)
    module_stack: list[str] = field(default_factory=list)
    keep_events: bool = True
    host_live: dict[int, int] = field(default_factory=dict)  # storages in host RAM (offloaded activations)
    host_current: int = 0
    host_peak: int = 0
    _host_depth: int = 0

    def __post_init__(self) -> None:
        super().__init__()

    @contextlib.contextmanager
    def host(self) -> Iterator[None]:
        """Storages made inside live in host RAM (an offload hook's copy): counted apart from the device."""
        self._host_depth += 1
        try:
            yield
        finally:
            self._host_depth -= 1

    def _track_host(self, storage, key: int) -> None:
        if key in self.host_live or key in self.live:
            return
        self.host_live[key] = storage.nbytes()
        self.host_current += storage.nbytes()
        self.host_peak = max(self.host_peak, self.host_current)
        weakref.finalize(storage, self._free_host, key)

    def _free_host(self, key: int) -> None:
        self.host_current -= self.host_live.pop(key, 0)

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.phase_peaks.setdefault(phase, self.current)

    def track(self, tensor: torch.Tensor) -> None:
        """Count a tensor's storage once, until it is freed."""
        storage = tensor.untyped_storage()
        key = id(storage)
        if self._host_depth:
            self._track_host(storage, key)
            return
        if key in self.live:
            return
        nbytes = storage.nbytes()
        self.live[key] = Record(nbytes, self.phase, self.module_stack[-1] if self.module_stack else None)
        self.current += nbytes
        if self.keep_events:
            self.events.append((nbytes, key))
        weakref.finalize(storage, self._free, key)
        if self.current > self.phase_peaks.get(self.phase, 0):
            self.phase_peaks[self.phase] = self.current
        if self.current > self.peak:
            self.peak = self.current
            self.peak_phase = self.phase
            self._peak_dirty = True

    def snapshot_if_peak(self) -> None:
        """Copy the live set when a new peak was reached since the last op (once per op, not per tensor)."""
        if getattr(self, "_peak_dirty", False):
            self.peak_live = dict(self.live)
            self._peak_dirty = False

    def _free(self, key: int) -> None:
        record = self.live.pop(key, None)
        if record is not None:
            self.current -= record.nbytes
            if self.keep_events:
                self.events.append((-record.nbytes, key))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        self.snapshot_if_peak()
        return out
