"""The fast GGUF header reader agrees with gguf's own GGUFReader, and refuses files that are not GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

from qkv.tools.errors import BadInput
from qkv.tools.gguf_meta import ArrayLen, read_gguf_header


@pytest.mark.slow
def test_header_matches_gguf_reader_on_a_real_file(smollm2_gguf: Path) -> None:
    from gguf import GGUFReader

    ref = GGUFReader(smollm2_gguf)
    mine = read_gguf_header(smollm2_gguf)
    assert [(t.name, tuple(int(d) for d in t.shape)) for t in ref.tensors] == \
        [(t.name, t.shape) for t in mine.tensors]
    assert sum(int(t.n_elements) for t in ref.tensors) == sum(t.n_elements for t in mine.tensors)
    assert [int(t.tensor_type) for t in ref.tensors] == [t.ggml_type for t in mine.tensors]
    for key, fld in ref.fields.items():
        if key.startswith("GGUF."):
            continue  # the reader's own pseudo-fields (version, counts)
        value = mine.fields[key]
        if isinstance(value, ArrayLen):
            assert value == len(fld.data), key
        else:
            expected = fld.contents()
            assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected, key


def test_vocabulary_is_kept_as_its_length(smollm2_gguf: Path) -> None:
    header = read_gguf_header(smollm2_gguf)
    assert isinstance(header.get("tokenizer.ggml.tokens"), ArrayLen)
    assert header.get("tokenizer.ggml.tokens") == 49152
    assert header.get("general.architecture") == "llama"


@pytest.mark.parametrize("content", [b"", b"GGUF", b"NOTGGUF" + b"\0" * 64, b"GGUF\x03\0\0\0" + b"\xff" * 16])
def test_non_gguf_bytes_are_a_clear_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(BadInput, match="not a readable GGUF file"):
        read_gguf_header(bad)


def test_truncated_real_file_is_a_clear_error(tmp_path: Path, smollm2_gguf: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with open(smollm2_gguf, "rb") as src:
        cut.write_bytes(src.read(200_000))  # inside the vocabulary array
    with pytest.raises(BadInput, match="truncated"):
        read_gguf_header(cut)
