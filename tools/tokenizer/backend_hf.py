"""The Hugging Face `tokenizers` backend (Rust): batch encoding, pieces, and the word-piece counts the
auditor needs at near raw speed — by space-marker tokens (▁/Ġ), by character offsets, or, for BERT-style
WordPiece, by letter/digit runs; each rule checks itself and falls back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from itertools import compress
from typing import TYPE_CHECKING

from qkv.tools.tokenizer.words import ALNUM_KEPT, MARKS, chunked, space_marks, split_at_starts

if TYPE_CHECKING:
    from qkv.tools.tokenizer.tok import Tok


class HFCodec:
    @staticmethod
    def encode_batch(tok: Tok, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in tok.backend.encode_batch_fast(texts, add_special_tokens=False)]

    @staticmethod
    def count_words(tok: Tok, words: list[str], pmap: Callable) -> list[int]:
        if _wordpiece_lowercase(tok) is not None:
            return _count_words_wordpiece(tok, words, pmap)
        _space_marked(tok)  # fill the cache here, not in every worker thread
        return chunked(partial(_count_words_hf, tok), words, pmap)

    @staticmethod
    def pieces(tok: Tok, ids: Sequence[int]) -> list[str]:
        return [tok.backend.id_to_token(i) or f"<{i}>" for i in ids]


def _count_words_wordpiece(tok: Tok, words: list[str], pmap: Callable) -> list[int]:
    """BERT-style tokenizers (BertNormalizer, BertPreTokenizer, WordPiece). On ASCII text the normaliser
    only lowercases and drops control characters, the pre-tokenizer isolates every other non-alphanumeric
    character ('_' included), and WordPiece encodes each pre-token alone. So an ASCII word's pieces are its
    letter/digit runs' pieces plus a fixed count per other character (1, or 0 for a control character).
    The corpus's distinct runs are far fewer than its distinct words (identifiers share parts; case folds
    away; bench corpus: 17k runs of 123k characters against 31.7k words of 272k) and each is one
    pre-token, so they are encoded together and split at the tokens without the continuation prefix.
    All of it is done in numpy and C-level calls; words with non-ASCII characters are encoded whole."""
    import numpy as np

    lower = _wordpiece_lowercase(tok)
    start, char_pieces = tok.cache["wordpiece_start"], tok.cache["wordpiece_char_pieces"]

    def count_runs(chunk: list[str]) -> list[int]:
        # each run is one pre-token and yields >= 1 token, the first without the continuation prefix
        split = split_at_starts(tok.backend.encode_batch_fast(["".join(chunk)], add_special_tokens=False)[0].ids,
                                 start, len(chunk))
        return split if split is not None else _count_words_hf(tok, chunk)

    is_ascii = np.fromiter(map(str.isascii, words), dtype=bool, count=len(words))
    plain = list(compress(words, is_ascii))
    text = "".join(plain)  # ' w1 w2 w3': each word keeps its leading space, and holds no other
    data = (text.lower() if lower else text).encode("ascii")  # ASCII lower() keeps every length
    a = np.frombuffer(data, dtype=np.uint8)
    word_of = np.cumsum(a == 0x20) - 1  # the word each byte belongs to
    kept = data.translate(ALNUM_KEPT)  # letters/digits kept, every other byte a space
    runs = [r for r in kept.split(b" ") if r]  # the letter/digit runs in order
    alnum = np.frombuffer(b" " + kept, dtype=np.uint8) != 0x20
    run_word = word_of[np.flatnonzero(alnum[1:] & ~alnum[:-1])]
    distinct = list(dict.fromkeys(runs))
    found = dict(zip(distinct, chunked(count_runs, [" " + r.decode() for r in distinct], pmap), strict=True))
    n = len(plain)
    pieces = (np.bincount(run_word, np.fromiter(map(found.__getitem__, runs), np.float64, len(runs)), n)
              + np.bincount(word_of, char_pieces[a], n)).astype(np.int64)
    # a string that is not one word's shape (letters next to punctuation, e.g. '[MASK]') could be an
    # added token: those are encoded whole
    wordlike = np.bincount(word_of, alnum[1:] | (a == 0x5F), n)  # letters, digits, '_' per word
    mixed = np.flatnonzero((wordlike > 0) & (wordlike < np.bincount(word_of, minlength=n) - 1))
    pieces[mixed] = chunked(partial(_count_words_hf, tok), [plain[i] for i in mixed.tolist()], pmap)
    out = np.empty(len(words), dtype=np.int64)
    out[is_ascii] = pieces
    out[~is_ascii] = chunked(partial(_count_words_hf, tok), list(compress(words, ~is_ascii)), pmap)
    return out.tolist()

def _wordpiece_lowercase(tok: Tok) -> bool | None:
    """Whether a BERT-style tokenizer lowercases (None when it is not one: BertNormalizer, BertPreTokenizer
    and WordPiece, with no added token that could match inside an ASCII word) — cached, with the facts
    the word counting needs."""
    if "wordpiece_lowercase" not in tok.cache:
        import numpy as np

        from qkv.tools.tokenizer.metrics import WORD_RE  # an added token shaped like a word matches in one

        b, lower = tok.backend, None
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
            tok.cache["wordpiece_start"] = start
            # pieces of each ASCII character outside letters/digits alone: punctuation 1 (its own
            # pre-token), a control character 0 (the normaliser drops it)
            others = [c for c in range(128) if not chr(c).isalnum()]
            pieces = np.zeros(256, dtype=np.float64)
            for c, e in zip(others, b.encode_batch_fast([f" {chr(c)}" for c in others], add_special_tokens=False),
                            strict=True):
                pieces[c] = len(e.ids)
            pieces[0x20] = 0  # the space before each word
            tok.cache["wordpiece_char_pieces"] = pieces
        tok.cache["wordpiece_lowercase"] = lower
    return tok.cache["wordpiece_lowercase"]

def _count_words_hf(tok: Tok, words: Sequence[str]) -> list[int]:
    """One native call for the chunk ' w1 w2 w3…', its tokens assigned to words by space-marker tokens
    (▁/Ġ) when the vocabulary has them, else by character offsets. Each rule checks itself; a chunk it
    cannot split exactly goes to the next one, and last to word-by-word encoding."""
    import numpy as np

    words = list(words)
    if not words:
        return []
    # the batch calls, not encode: only they release the GIL, so chunks can run in parallel; the fast
    # variant skips offsets, whose tracking and conversion cost ~40% of the call
    fast = tok.backend.encode_batch_fast
    marked = _space_marked(tok)
    joined = "".join(words)
    if marked is not None and MARKS.isdisjoint(joined):
        # every word's first token carries the space marker and no other token can (a token that
        # straddled two words would hide one)
        split = split_at_starts(fast([joined], add_special_tokens=False)[0].ids, marked, len(words))
        if split is not None:
            return split
    enc = tok.backend.encode_batch([joined], add_special_tokens=False)[0]
    lens = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
    first = np.searchsorted(starts, offs[:, 0], side="right") - 1
    last = np.searchsorted(starts, np.maximum(offs[:, 1] - 1, offs[:, 0]), side="right") - 1
    if len(offs) == len(enc.ids) and np.array_equal(first, last):
        return np.bincount(first, minlength=len(words)).tolist()
    return [len(e) for e in fast(words, add_special_tokens=False)]

def _space_marked(tok: Tok):
    """bool[vocab]: tokens that begin with a SentencePiece '▁' or byte-level 'Ġ' space marker; None when
    the vocabulary marks spaces some other way (WordPiece) — cached."""
    if "space_marked" not in tok.cache:
        tok.cache["space_marked"] = space_marks(tok.backend.get_vocab(with_added_tokens=True))
    return tok.cache["space_marked"]
