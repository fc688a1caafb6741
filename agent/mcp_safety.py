"""What an MCP caller may make qkv read: paths only inside the allowed roots, no symlink escapes, no
device files, FIFOs or sockets, bounded file sizes and bounded globs (the bounds on the arguments
themselves live in mcp_limits).

A remote agent drives these tools, so every file-reading argument is checked here before the tool
function sees it, and the checked value handed on is the resolved real path (the tool then opens exactly
the file that was checked). Errors name only what the caller sent or what lies inside the roots: a path
outside them, or missing, gets one message either way, so a refusal reveals nothing about the rest of the
disk. Nothing here imports the SDK: it is plain policy, tested on its own."""

from __future__ import annotations

import fnmatch
import glob
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from qkv.agent.mcp_limits import (
    MIB,
    BroadRoot,
    InputTooLarge,
    Limits,
    PathRefused,
    check_arguments,
    check_terms_file,
)
from qkv.tools.errors import BadInput

# What a path argument points at; each kind has its own size ceiling.
PathKind = Literal["model", "config", "text", "tokenizer"]

# Files a "model" argument may point at that are memory-mapped or never read whole (GGUF metadata only).
_WEIGHT_SUFFIXES = frozenset({".gguf", ".safetensors", ".bin", ".pt", ".pth", ".model"})


def broad_reason(folder: Path) -> str | None:
    """Why `folder` is too broad to serve by default (None when it is not): the filesystem root, the
    user's home folder, or a folder that contains it (/home, /Users) would expose every dotfile, key and
    credential of the account to whoever drives the server."""
    if folder == Path(folder.anchor):
        return "the filesystem root"
    try:
        home = Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError, OSError):  # no HOME and no password entry: there is no home to protect
        return None
    if folder == home:
        return "your home folder"
    if home.is_relative_to(folder):
        return "a folder that contains your home folder"
    return None


@dataclass(frozen=True)
class Sandbox:
    """The allowed roots (resolved once at start) and the limits; `check_*` raise PathRefused/InputTooLarge."""

    roots: tuple[Path, ...]
    limits: Limits = field(default_factory=Limits)
    allow_online: bool = False

    @classmethod
    def from_dirs(cls, dirs: Sequence[str | os.PathLike[str]] = (), *, limits: Limits | None = None,
                  allow_online: bool = False, allow_broad: bool = False) -> Sandbox:
        """Roots from the command line (default: the working directory); each must be an existing folder.

        `/`, the home folder and folders above it are refused unless `allow_broad` (`--allow-broad-root`):
        desktop agents often start servers in `/` or `~`, and the default root would then be everything."""
        resolved = []
        for d in dirs or [os.getcwd()]:
            p = Path(d).expanduser()
            if not p.is_dir():
                raise BadInput(f"--root {d} is not an existing folder", expected="a folder the tools may read")
            real = p.resolve(strict=True)
            why = None if allow_broad else broad_reason(real)
            if why and not dirs:
                raise BroadRoot(
                    f"qkv mcp was started without --root in {real} ({why}), which would let every caller read "
                    "any file there", expected="--root FOLDER naming the project the tools may read (repeatable), "
                    "or --allow-broad-root to serve this folder anyway")
            if why:
                raise BroadRoot(f"--root {d} is {why}, which would let every caller read any file there",
                                expected="a project folder, or --allow-broad-root to serve it anyway")
            resolved.append(real)
        return cls(roots=tuple(dict.fromkeys(resolved)), limits=limits or Limits(), allow_online=allow_online)

    def narrowed(self, client_roots: Iterable[str | os.PathLike[str]]) -> Sandbox:
        """The roots a client's MCP roots leave: each part of a server root that is also inside a client root
        (a client root inside a server root, or a server root inside a client root). Client roots narrow,
        never widen; when none overlaps, no file may be read."""
        kept: list[Path] = []
        for c in client_roots:
            real = Path(os.path.realpath(os.path.expanduser(os.fspath(c))))
            for root in self.roots:
                if real == root or real.is_relative_to(root):
                    kept.append(real)
                elif root.is_relative_to(real):
                    kept.append(root)
        return replace(self, roots=tuple(dict.fromkeys(kept)))

    # ------------------------------------------------------------------------------------------ arguments
    def check_arguments(self, args: Mapping[str, Any], *, caps: Mapping[str, int] | None = None) -> None:
        """Bound the size and shape of a raw argument object before pydantic sees it."""
        check_arguments(args, self.limits, allow_online=self.allow_online, caps=caps)

    # -------------------------------------------------------------------------------------------- paths
    def is_inside(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def _within(self) -> str:
        if not self.roots:
            return "a path inside the allowed roots (none is left: the client's roots and the server's --root " \
                   "do not overlap)"
        return "a path inside: " + ", ".join(map(str, self.roots))

    def _outside_or_missing(self, name: str, value: str) -> PathRefused:
        # One message for both, so that a refusal says nothing about what exists outside the roots.
        return PathRefused(f"{name}: {value} is outside the allowed roots or does not exist", expected=self._within())

    @staticmethod
    def require_value(value: str, name: str, kind: PathKind) -> None:
        """An empty, blank or '.' path argument is a missing value, never "the root folder"; a name with a
        component longer than any file name can be (255 bytes) is neither a path nor a catalog name."""
        v = value.strip()
        if any(len(part.encode(errors="surrogatepass")) > 255 for part in v.split("/")):
            raise BadInput(f"{name} has a path component of more than 255 bytes",
                           expected=("a catalog name or " if kind in ("model", "tokenizer") else "")
                           + "a path whose file names are at most 255 bytes")
        if v and os.path.normpath(v) != ".":
            return
        what = {
            "model": "a model: a catalog name such as 'llama-2-7b' (resource qkv://catalog/models), or a "
                     "config.json, model folder or .gguf file inside the allowed roots",
            "tokenizer": "a tokenizer: a catalog name such as 'gpt2', or a tokenizer file or folder inside the "
                         "allowed roots",
        }.get(kind, "a file or folder below an allowed root, or a glob such as 'data/*.txt'")
        raise BadInput(f"{name} is missing (got {value!r})", expected=what)

    def names_a_path(self, value: str, kind: PathKind) -> bool:
        """Whether the argument will be read from disk: always for file kinds; for models and tokenizers,
        when it looks like a path or exists as one (under the first root or the working directory, where
        the resolver would look). Catalog names and hub ids ('org/name') are not paths."""
        if kind not in ("model", "tokenizer"):
            return True
        ref = value.strip()
        base = self.roots[0] if self.roots else None
        return (ref.startswith((".", "/", "~")) or ref.endswith((".json", ".gguf")) or "\\" in ref
                or (base is not None and os.path.exists(base / ref)) or os.path.exists(ref))

    def check_ref(self, value: str, kind: PathKind, name: str = "path") -> str:
        """A path argument; for kinds that also take names (models, tokenizers), names pass unchanged."""
        self.require_value(value, name, kind)
        if kind in ("model", "tokenizer"):
            return self.check_model_ref(value, name, kind)
        return self.check_path(value, kind, name)

    def check_pattern(self, value: str, kind: PathKind, name: str = "path") -> list[str]:
        """One entry of a file list: a path or a glob (expanded here, inside the roots, each match checked).
        '-' (stdin) is refused: on the stdio transport stdin is the protocol."""
        if value.strip() == "-":
            raise PathRefused(f"{name}: '-' (stdin) cannot be read by an MCP tool", expected="a file path")
        self.require_value(value, name, kind)
        if not glob.has_magic(value):
            return [self.check_ref(value, kind, name)]
        return [self.check_path(m, kind, name) for m in self.expand_glob(value, name)]

    def expand_glob(self, pattern: str, name: str = "path") -> list[str]:
        """Expand a glob inside the roots, sorted. The part before the first wildcard is checked against the
        roots BEFORE anything is listed (a pattern reaching outside is refused with the same message as an
        outside path); '..' is folded lexically first. Directory symlinks are never entered, so a link loop
        cannot make the walk endless; hidden entries match only a pattern that starts with '.', and '**'
        does not descend into hidden folders (as in Python's glob). The walk stops with an error after
        `max_list` matches or `max_glob_scan` directory entries."""
        if not self.roots:
            raise self._outside_or_missing(name, pattern)
        raw = os.path.expanduser(pattern)
        full = os.path.normpath(raw if os.path.isabs(raw) else os.path.join(self.roots[0], raw))
        parts = Path(full).parts
        cut = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
        prefix = Path(*parts[:cut])
        top = Path(os.path.realpath(prefix))
        if cut == len(parts) or not self.is_inside(prefix) or not self.is_inside(top):
            raise self._outside_or_missing(name, pattern)
        found = self._walk_glob(str(top), parts[cut:], name, pattern) if os.path.isdir(top) else []
        if not found:
            raise PathRefused(f"{name}: no file inside the allowed roots matches {pattern}",
                              expected="a glob matching files inside: " + ", ".join(map(str, self.roots)))
        return sorted(found)

    def _walk_glob(self, top: str, parts: tuple[str, ...], name: str, pattern: str) -> list[str]:
        lim = self.limits
        found: dict[str, None] = {}
        seen: set[tuple[str, int]] = set()
        stack = [(top, 0)]
        scanned = 0
        while stack:
            folder, i = stack.pop()
            if (folder, i) in seen:
                continue
            seen.add((folder, i))
            part, last = parts[i], i == len(parts) - 1
            recursive = part == "**"
            if recursive and not last:
                stack.append((folder, i + 1))  # '**' also matches no folder at all
            try:
                entries = os.scandir(folder)
            except OSError:
                continue
            with entries:
                for entry in entries:
                    scanned += 1
                    if scanned > lim.max_glob_scan:
                        raise InputTooLarge(f"{name}: {pattern} looks at more than {lim.max_glob_scan:,} entries",
                                            expected="a narrower glob (a sub-folder, a file suffix)")
                    hidden = entry.name.startswith(".")
                    is_dir = entry.is_dir(follow_symlinks=False)  # a symlinked folder is never entered
                    if recursive:
                        if hidden:
                            continue
                        if is_dir:
                            stack.append((entry.path, i))
                        elif last and (entry.is_file(follow_symlinks=False) or entry.is_symlink()):
                            found[entry.path] = None  # a trailing '**' matches the files below
                    elif (not hidden or part.startswith(".")) and fnmatch.fnmatchcase(entry.name, part):
                        if last:
                            found[entry.path] = None
                        elif is_dir:
                            stack.append((entry.path, i + 1))
                    if len(found) > lim.max_list:
                        raise InputTooLarge(f"{name}: {pattern} matches more than {lim.max_list} files",
                                            expected=f"at most {lim.max_list} (a narrower glob)")
        return list(found)

    def check_model_ref(self, value: str, name: str = "model", kind: PathKind = "model") -> str:
        """A model reference: catalog names and hub ids ('org/name', which exist nowhere on disk) pass
        unchanged; anything that looks like a path or exists as one is checked."""
        self.require_value(value, name, kind)
        ref = value.strip()
        return self.check_path(ref, kind, name) if self.names_a_path(ref, kind) else value

    def check_path(self, value: str, kind: PathKind, name: str = "path") -> str:
        """Resolve `value` (relative paths: against the first root) to a real path inside the roots that
        is a regular file or a folder within the kind's size limit; return it as a string.

        Nothing outside the roots is looked at: a path whose real location is outside, or that does not
        exist, gets one message either way, and a symlink's target is never shown."""
        self.require_value(value, name, kind)
        if not self.roots:
            raise self._outside_or_missing(name, value)
        raw = Path(os.path.expanduser(value))  # '~unknown' stays as it is (Path.expanduser would raise)
        lexical = Path(os.path.abspath(raw if raw.is_absolute() else self.roots[0] / raw))
        real = Path(os.path.realpath(lexical))
        if not self.is_inside(real):
            if self.is_inside(lexical):  # a link inside the roots (the path or a folder on it) points out
                raise PathRefused(f"{name}: {value} is a symlink that escapes the allowed roots",
                                  expected="a file whose real path is inside: " + ", ".join(map(str, self.roots)))
            raise self._outside_or_missing(name, value)
        if not os.path.exists(real):
            raise self._outside_or_missing(name, value)
        self._check_node(real, kind, name, value)
        if os.path.isdir(real):
            self._check_tree(real, kind, name)
        return str(real)

    def _check_tree(self, top: Path, kind: PathKind, name: str) -> None:
        """Every entry below a folder argument (symlinked folders followed once): inside the roots, no
        device files, within the size limit. Bounded by max_dir_entries so a huge tree is refused, not walked."""
        seen, stack, count = {top}, [top], 0
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    count += 1
                    if count > self.limits.max_dir_entries:
                        raise PathRefused(
                            f"{name}: folder {top} holds more than {self.limits.max_dir_entries:,} entries",
                            expected="a model, tokenizer or data folder")
                    target = Path(os.path.realpath(entry.path))
                    if not self.is_inside(target):
                        raise PathRefused(f"{name}: {entry.path} is a symlink that escapes the allowed roots",
                                          expected="a folder whose files all live inside the allowed roots")
                    if target.is_dir():
                        if target not in seen:
                            seen.add(target)
                            stack.append(target)
                    else:
                        self._check_node(target, kind, name, entry.path)

    def _check_node(self, real: Path, kind: PathKind, name: str, shown: str) -> None:
        try:
            st = os.stat(real)
        except OSError as exc:
            raise PathRefused(f"{name}: cannot stat {shown} ({exc.strerror})", expected="a readable file") from None
        if stat.S_ISDIR(st.st_mode):
            return
        if not stat.S_ISREG(st.st_mode):
            what = ("a device file" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                    else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "not a regular file")
            raise PathRefused(f"{name}: {shown} is {what}", expected="a regular file or a folder")
        if kind == "model" and real.suffix not in _WEIGHT_SUFFIXES:
            kind = "config"  # a config.json is parsed whole; only weight files may be large
        ceiling = self.limits.file_bytes.get(kind, 64 * MIB)
        if st.st_size > ceiling:
            raise PathRefused(f"{name}: {shown} is {st.st_size:,} bytes",
                              expected=f"a {kind} file of at most {ceiling:,} bytes")

    # ---------------------------------------------------------------------------- files read back verbatim
    def check_terms_file(self, path: str, name: str = "terms") -> None:
        """A file whose lines come back in the result word for word must hold only terms (`check_terms_file`)."""
        check_terms_file(path, self.limits, name)
