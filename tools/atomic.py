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
        # mkstemp creates the file 0600; give it the mode a plain open() would (the target's own mode when it
        # exists, else 0666 under the umask), so a review sheet or config stays readable by others as before.
        os.chmod(tmp, _mode_for(path))
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


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before any thread could create a file.
    umask = os.umask(0)
    os.umask(umask)
    return umask


_UMASK = _read_umask()


def _mode_for(path: Path) -> int:
    """The permission bits `open(path, "w")` would leave: the existing file's, else 0666 minus the umask."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_UMASK
