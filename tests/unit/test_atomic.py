"""The one atomic write keeps the permissions a plain open() would give (mkstemp alone makes files 0600)."""

from __future__ import annotations

import os

from qkv.tools.atomic import write_text


def test_a_new_file_gets_the_umask_mode_and_an_existing_file_keeps_its_own(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    new = write_text(tmp_path / "sheet.csv", "a,b\n")
    assert new.read_text() == "a,b\n" and new.stat().st_mode & 0o777 == 0o666 & ~umask
    kept = tmp_path / "config.yaml"
    kept.write_text("old\n")
    kept.chmod(0o640)
    write_text(kept, "new\n", fsync=True)
    assert kept.read_text() == "new\n" and kept.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
