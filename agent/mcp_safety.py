"""What an MCP caller may make qkv read: paths only inside the allowed roots, no symlink escapes, no
device files, FIFOs or sockets, bounded file sizes, and bounded arguments.

A remote agent drives these tools, so every file-reading argument is checked here before the tool
function sees it, and the checked value handed on is the resolved real path (the tool then opens exactly
the file that was checked). Nothing here imports the SDK: it is plain policy, tested on its own."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qkv.tools.errors import BadInput

# What a path argument points at; each kind has its own size ceiling.
PathKind = Literal["model", "config", "text", "tokenizer"]

MIB = 1024**2
GIB = 1024**3


# Files a "model" argument may point at that are memory-mapped or never read whole (GGUF metadata only).
_WEIGHT_SUFFIXES = frozenset({".gguf", ".safetensors", ".bin", ".pt", ".pth", ".model"})


class PathRefused(BadInput):
    """A path outside the allowed roots, a symlink escape, a device file, or an oversized file."""


class InputTooLarge(BadInput):
    """An argument longer, deeper or bigger than the server's limits."""


@dataclass(frozen=True)
class Limits:
    """Ceilings on what one call may send and make qkv read."""

    max_string: int = 8192  # characters in any one string argument
    max_list: int = 256  # items in any one list argument
    max_depth: int = 8  # nesting of objects and lists
    max_args_bytes: int = 256 * 1024  # the whole argument object, as JSON
    max_int: int = 10**12  # |integer| (sequence lengths, batch sizes, token counts)
    max_dir_entries: int = 4096  # entries of a folder argument that are checked (and may be read)
    file_bytes: Mapping[str, int] = field(default_factory=lambda: {
        "config": 4 * MIB,  # config.json, generation_config.json
        "tokenizer": 256 * MIB,  # tokenizer.json of a 262k vocabulary is ~33 MB
        "text": 64 * MIB,  # corpora, prediction / reference files
        "model": 64 * GIB,  # GGUF / model folders: only metadata is read, the file is memory-mapped
    })


@dataclass(frozen=True)
class Sandbox:
    """The allowed roots (resolved once at start) and the limits; `check_*` raise PathRefused/InputTooLarge."""

    roots: tuple[Path, ...]
    limits: Limits = field(default_factory=Limits)
    allow_online: bool = False

    @classmethod
    def from_dirs(cls, dirs: Sequence[str | os.PathLike[str]] = (), *, limits: Limits | None = None,
                  allow_online: bool = False) -> Sandbox:
        """Roots from the command line (default: the working directory); each must be an existing folder."""
        resolved = []
        for d in dirs or [os.getcwd()]:
            p = Path(d).expanduser()
            if not p.is_dir():
                raise BadInput(f"--root {d} is not an existing folder", expected="a folder the tools may read")
            resolved.append(p.resolve(strict=True))
        return cls(roots=tuple(dict.fromkeys(resolved)), limits=limits or Limits(), allow_online=allow_online)

    # ------------------------------------------------------------------------------------------ arguments
    def check_arguments(self, args: Mapping[str, Any], *, caps: Mapping[str, int] | None = None) -> None:
        """Bound the size and shape of a raw argument object before pydantic sees it."""
        import json

        try:
            size = len(json.dumps(args, ensure_ascii=False).encode())
        except (TypeError, ValueError, RecursionError):
            raise InputTooLarge("arguments are not a JSON object", expected="plain JSON values") from None
        if size > self.limits.max_args_bytes:
            raise InputTooLarge(f"arguments are {size:,} bytes",
                                expected=f"at most {self.limits.max_args_bytes:,} bytes of JSON")
        self._walk(args, "arguments", 0)
        for name, cap in (caps or {}).items():
            value = args.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > cap:
                raise InputTooLarge(f"{name} is {value:,}", expected=f"at most {cap:,} for this tool")
        if args.get("trust_remote_code"):
            raise BadInput("trust_remote_code is never enabled by the qkv MCP server",
                           expected="local configs and GGUF files, or catalog names")
        if args.get("online") and not self.allow_online:
            raise BadInput("online lookups are off on this server",
                           expected="online: false (start `qkv mcp --online` to allow fetching hub configs)")

    def _walk(self, value: Any, where: str, depth: int) -> None:
        lim = self.limits
        if depth > lim.max_depth:
            raise InputTooLarge(f"{where} is nested {depth} levels deep", expected=f"at most {lim.max_depth}")
        if isinstance(value, str):
            if len(value) > lim.max_string:
                raise InputTooLarge(f"{where} is a string of {len(value):,} characters",
                                    expected=f"at most {lim.max_string:,}")
            if value.lstrip().lower().startswith(("http://", "https://")) and not self.allow_online:
                raise BadInput(f"{where} is a URL; this server makes no network calls",
                               expected="local files and catalog names (start `qkv mcp --online` to allow URLs)")
            if "\x00" in value:
                raise BadInput(f"{where} contains a NUL character", expected="text without NUL bytes")
        elif isinstance(value, bool):
            return
        elif isinstance(value, int):
            if abs(value) > lim.max_int:
                raise InputTooLarge(f"{where} is {value}", expected=f"an integer of magnitude at most {lim.max_int:,}")
        elif isinstance(value, list | tuple):
            if len(value) > lim.max_list:
                raise InputTooLarge(f"{where} has {len(value):,} items", expected=f"at most {lim.max_list}")
            for i, item in enumerate(value):
                self._walk(item, f"{where}[{i}]", depth + 1)
        elif isinstance(value, Mapping):
            if len(value) > lim.max_list:
                raise InputTooLarge(f"{where} has {len(value):,} keys", expected=f"at most {lim.max_list}")
            for k, v in value.items():
                if len(str(k)) > 128:
                    raise InputTooLarge(f"{where} has a key of {len(str(k)):,} characters", expected="at most 128")
                self._walk(v, f"{where}.{k}" if where != "arguments" else str(k), depth + 1)

    # -------------------------------------------------------------------------------------------- paths
    def is_inside(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def check_ref(self, value: str, kind: PathKind, name: str = "path") -> str:
        """A path argument; for kinds that also take names (models, tokenizers), names pass unchanged."""
        if kind in ("model", "tokenizer"):
            return self.check_model_ref(value, name, kind)
        return self.check_path(value, kind, name)

    def check_pattern(self, value: str, kind: PathKind, name: str = "path") -> list[str]:
        """One entry of a file list: a path or a glob (expanded here, inside the roots, each match checked).
        '-' (stdin) is refused: on the stdio transport stdin is the protocol."""
        import glob

        if value.strip() == "-":
            raise PathRefused(f"{name}: '-' (stdin) cannot be read by an MCP tool", expected="a file path")
        if not glob.has_magic(value):
            return [self.check_ref(value, kind, name)]
        pattern = Path(value).expanduser()
        pattern = pattern if pattern.is_absolute() else self.roots[0] / pattern
        matches = sorted(glob.glob(str(pattern), recursive=True))
        if not matches:
            raise PathRefused(f"{name}: no file matches {value}", expected="a glob matching files inside the roots")
        if len(matches) > self.limits.max_list:
            raise InputTooLarge(f"{name}: {value} matches {len(matches):,} files",
                                expected=f"at most {self.limits.max_list}")
        return [self.check_path(m, kind, name) for m in matches]

    def check_model_ref(self, value: str, name: str = "model", kind: PathKind = "model") -> str:
        """A model reference: catalog names and hub ids ('org/name', which exist nowhere on disk) pass
        unchanged; anything that looks like a path or exists as one (under the first root or the working
        directory, where the resolver would look) is checked."""
        ref = value.strip()
        base = self.roots[0]
        path_like = (ref.startswith((".", "/", "~")) or ref.endswith((".json", ".gguf"))
                     or "\\" in ref or (base / ref).exists() or Path(ref).exists())
        return self.check_path(ref, kind, name) if path_like else value

    def check_path(self, value: str, kind: PathKind, name: str = "path") -> str:
        """Resolve `value` (relative paths: against the first root) to a real path inside the roots that
        is a regular file or a folder within the kind's size limit; return it as a string."""
        raw = Path(value).expanduser()
        lexical = Path(os.path.abspath(raw if raw.is_absolute() else self.roots[0] / raw))
        if not os.path.lexists(lexical):
            raise PathRefused(f"{name}: no such file or folder: {value}",
                              expected="a path inside the allowed roots: " + ", ".join(map(str, self.roots)))
        real = Path(os.path.realpath(lexical))
        if not self.is_inside(real):
            if self.is_inside(lexical):
                raise PathRefused(f"{name}: {value} is a symlink that escapes the allowed roots (-> {real})",
                                  expected="a file whose real path is inside: " + ", ".join(map(str, self.roots)))
            raise PathRefused(f"{name}: {value} is outside the allowed roots",
                              expected="a path inside: " + ", ".join(map(str, self.roots)))
        self._check_node(real, kind, name, value)
        if real.is_dir():
            self._check_tree(real, kind, name)
        return str(real)

    def _check_tree(self, top: Path, kind: PathKind, name: str) -> None:
        """Every entry below a folder argument (symlinked folders followed once): inside the roots, no
        device files, within the size limit. Bounded by max_dir_entries so a huge tree is refused, not walked."""
        seen, stack, count = {top}, [top], 0
        while stack:
            for entry in os.scandir(stack.pop()):
                count += 1
                if count > self.limits.max_dir_entries:
                    raise PathRefused(f"{name}: folder {top} holds more than {self.limits.max_dir_entries:,} entries",
                                      expected="a model, tokenizer or data folder")
                target = Path(os.path.realpath(entry.path))
                if not self.is_inside(target):
                    raise PathRefused(f"{name}: {entry.path} is a symlink that escapes the allowed roots (-> {target})",
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
