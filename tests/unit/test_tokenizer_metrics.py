"""Exact metric values: the Rust et al. (2021) anchor, and a hand-checked legal sentence through real
GPT-2 (byte-level BPE) and BERT uncased (WordPiece) tokenizers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkv.tools.tokenizer.audit import AuditRequest, audit
from qkv.tools.tokenizer.metrics import DEFINITIONS, WordCounter, fertility_pcw, split_words
from tests.anchors import load_anchor

SENTENCE = "the indemnitor shall indemnify the indemnitee"


def test_fertility_definition_matches_the_rust_2021_anchor():
    case = load_anchor("facts.json")["fertility-def"]
    # 1,000 words -> 1,450 tokens, 300 of them split into >= 2 pieces (700 x 1 + 250 x 2 + 50 x 5 = 1,450).
    pieces = [1] * 700 + [2] * 250 + [5] * 50
    fertility, pcw = fertility_pcw(pieces)
    assert (fertility, pcw) == (1.45, 0.30)
    assert "1.45" in case["expected"] and "0.30" in case["expected"]
    defs = {d.name: d for d in DEFINITIONS}
    assert "Rust et al. 2021" in defs["fertility"].source and "Rust et al. 2021" in defs["pcw"].source


def test_words_split_punctuation_apart_and_count_once():
    assert split_words("The court held, that (a) it's void.") == [
        "The", "court", "held", ",", "that", "(", "a", ")", "it", "'", "s", "void", "."]
    wc = WordCounter()
    wc.update("foo(bar, baz) foo")
    wc.update("bar bar")
    assert wc.words() == {"foo": 2, "bar": 3, "baz": 1, "(": 1, ",": 1, ")": 1}



def test_word_counter_equals_the_word_regex_on_unicode_code_and_odd_spaces():
    """The C-speed counter (translate + split) must count exactly the words the regex finds: accented and
    non-Latin letters, digits of other scripts, underscores, Unicode punctuation, and whitespace such as
    U+00A0, U+2003, U+3000 and the ASCII separators U+001C-U+001F that str.split() treats as spaces."""
    from collections import Counter

    texts = [
        "Café naïve—déjà vu «quoted» x_1=f(a,b);  # note\n\tdone...",
        "Straße\u00a0groß\u2003東京都\u3000テスト、これは。 ١٢٣ ٤٥ αβγ∑δ",
        "a\x1cb\x1dc\x1ed\x1fe \u2028line\u2029para \x00nul\x7f del",
        "self.__dict__['k'] += 1  # snake_case_name, CamelCase; 3.14e-10 → ≤ ≥ ±½",
        "",
    ]
    wc = WordCounter()
    for t in texts:
        wc.update(t)
    expected = Counter(w for t in texts for w in split_words(t))
    assert wc.words() == expected
    assert wc.words()["_1"] == 0 and wc.words()["x_1"] == 1 and wc.words()["..."] == 1


# Characters that stress the byte passes: ASCII of every class (NUL and 0x1C-0x1F included), multi-byte
# letters, symbols and spaces (NBSP, EM SPACE, NEL, ideographic space), and a CJK letter.
_ALPHABET = "ab_Z09 \t\n\x00\x1c\x1f.,()=+-'\"#\x7fé東ß١—“”…\u00a0\u2003\x85\u3000\u2028"


@given(st.lists(st.text(alphabet=_ALPHABET, max_size=40), max_size=6))
@settings(max_examples=300, deadline=None)
def test_word_counter_equals_the_word_regex_on_any_mix(texts):
    from collections import Counter

    wc = WordCounter()
    wc.update_batch(texts)
    assert wc.words() == Counter(w for t in texts for w in split_words(t))


@given(st.lists(st.binary(max_size=120), max_size=8), st.booleans())
@settings(max_examples=300, deadline=None)
def test_run_counter_equals_translate_and_split(chunks, pop):
    """runs.RunCounter (packed keys grouped by a 64-bit mix, merged across texts, rare runs popped) counts
    exactly what bytes.translate + split + Counter would."""
    from collections import Counter

    from qkv.tools.tokenizer.metrics import _IN_LETTERS, _IN_SYMBOLS
    from qkv.tools.tokenizer.runs import Packed, RunCounter

    for inside in (_IN_LETTERS, _IN_SYMBOLS):
        table = bytes(b if inside[b] else 0x20 for b in range(256))  # bytes outside the pass -> b' '
        rc, want, popped = RunCounter(inside), Counter(), Counter()
        for data in chunks:
            rc.add(Packed(data))
            want.update(data.translate(table).split())
            if pop:
                popped.update(rc.pop_rare())
        assert popped + Counter(rc.items()) == want


def test_a_hash_collision_falls_back_to_the_exact_sort(monkeypatch):
    """With the mix forced to 0 every run collides; the exact check must catch it and sort the pairs."""
    import numpy as np

    import qkv.tools.tokenizer.runs as runs
    from qkv.tools.tokenizer.metrics import _IN_LETTERS

    monkeypatch.setattr(runs, "_K1", np.uint64(0))
    monkeypatch.setattr(runs, "_K2", np.uint64(0))
    rc = runs.RunCounter(_IN_LETTERS)  # runs of 8-15 bytes are the ones grouped by the mix
    rc.add(runs.Packed(b"the indemnitor and the indemnitee; the indemnitor shall pay the licensee"))
    assert rc.items() == {b"the": 4, b"indemnitor": 2, b"and": 1, b"indemnitee": 1, b"shall": 1, b"pay": 1,
                          b"licensee": 1}


def test_folding_rare_words_keeps_the_totals_exact(tmp_path, monkeypatch):
    """Huge corpora fold once-seen words into the totals mid-pass to bound memory: the totals must not move."""
    import qkv.tools.tokenizer.audit as audit_mod

    path = tmp_path / "c.txt"
    path.write_text("\n".join(f"clause {i} indemnitor{i % 7} shall—as agreed—pay Müller{i}." for i in range(3000)))
    req = AuditRequest(tokenizers=["gpt2", "bert-base-uncased"], corpus=[str(path)], extend=False)
    whole = audit(req)
    monkeypatch.setattr(audit_mod, "BATCH_CHARS", 4096)  # many batches,
    monkeypatch.setattr(audit_mod, "MAX_DISTINCT", 50)  # and a fold after nearly every one
    folded = audit(req)
    for a, b in zip(whole.tokenizers, folded.tokenizers, strict=True):
        assert (a.words, a.fertility, a.pcw, a.tokens) == (b.words, b.fertility, b.pcw, b.tokens)


@pytest.fixture(scope="module")
def sentence_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("hand") / "clause.txt"
    path.write_text(SENTENCE)
    terms = path.with_name("terms.txt")
    terms.write_text("# terms of art\nindemnitor\nindemnitee\nshall\n")
    return audit(AuditRequest(tokenizers=["gpt2", "bert-base-uncased"], corpus=[str(path)], terms=str(terms),
                              min_count=2, top_words=5))


def test_exact_values_on_a_hand_checked_sentence(sentence_report):
    gpt2, bert = sentence_report.tokenizers
    # GPT-2 pieces, read off by hand: the | indemn+itor | shall | indemn+ify | the | indemn+ite+e
    assert gpt2.fragmented == []  # each split word occurs once: "frequent" needs a count >= 2
    assert (gpt2.words, gpt2.tokens) == (6, 10)
    assert gpt2.fertility == pytest.approx(10 / 6) and gpt2.pcw == 0.5
    assert gpt2.chars_per_token == 45 / 10 and gpt2.bytes_per_token == 45 / 10
    # BERT uncased: ind+##em+##ni+##tor, ind+##em+##ni+##fy, ind+##em+##ni+##tee
    assert (bert.words, bert.tokens) == (6, 15)
    assert bert.fertility == 15 / 6 and bert.pcw == 0.5
    assert bert.chars_per_token == 3.0
    assert gpt2.unk_tokens == bert.unk_tokens == 0 and gpt2.byte_fallback_tokens == 0
    # sequence-length inflation against the best (GPT-2 here): 15 / 10
    assert gpt2.inflation == 1.0 and bert.inflation == 1.5
    # the rule: fertility >= 1.5 with nothing worth adding (no split word occurs twice) -> domain adapter
    assert gpt2.extension is None and gpt2.recommendation.action == "adapter"
    assert "no fragmented word occurs 2+ times" in gpt2.recommendation.reason
    assert sentence_report.best == "gpt2"
    assert [r.tokenizer for r in sentence_report.ranking] == ["gpt2", "bert-base-uncased"]


def test_terms_scored_on_their_own(sentence_report):
    gpt2, bert = sentence_report.tokenizers
    assert [(t.term, t.n_pieces) for t in bert.terms.terms] == [("indemnitor", 4), ("indemnitee", 4), ("shall", 1)]
    assert bert.terms.pieces_per_term == 3.0 and bert.terms.share_split_3plus == pytest.approx(2 / 3)
    assert [t.n_pieces for t in gpt2.terms.terms] == [2, 3, 1]
    assert gpt2.terms.share_split_3plus == pytest.approx(1 / 3)


def test_unknown_and_byte_fallback_tokens_are_counted(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_text("snow \u2603 and \ue000 here \U0001F917")  # snowman, a private-use character, an emoji
    report = audit(AuditRequest(tokenizers=["gpt2", "bert-base-uncased"], corpus=[str(path)], extend=False))
    gpt2, bert = report.tokenizers
    # GPT-2: s|now| \xe2\x98|\x83| and| |\xee\x80|\x80| here| \xf0\x9f|\xa4|\x97 -> 7 pieces of split characters
    assert (gpt2.tokens, gpt2.byte_fallback_tokens, gpt2.unk_tokens) == (12, 7, 0)
    assert gpt2.byte_fallback_rate == 7 / 12
    # BERT uncased: snow [UNK] and here [UNK] (its normaliser drops the private-use character)
    assert (bert.tokens, bert.unk_tokens, bert.byte_fallback_tokens) == (5, 2, 0)
    assert bert.unk_rate == 0.4
    assert "not measured" in report.recommendation.reason  # extend=False is said, not hidden
    assert (gpt2.characters, gpt2.bytes) == (19, 26)  # 16 ASCII + 2 three-byte + 1 four-byte characters
