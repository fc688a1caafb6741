"""The one atomic file write: a temporary file beside the target, then a rename, so a reader (or a user
after a crash) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(path: Path | str, text: str, *, fsync: bool = False) -> Path:
    """Write `text` to `path` atomically (parents created). `fsync`: flush to disk before the rename, for
    files a resume relies on (checkpoint markers). The temporary name is unique, so two processes
    writing the same target never share one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
