"""Perplexity of the bundled Gemma 3 270M through transformers (dequantised fp32) and llama.cpp (Q4_K_M)
on a fixed English text, for several window/stride settings: the agreement between backends, the effect of
the stride, and the wall-time ratio llama.cpp / transformers measured in the same run.

    QKV_HOME=/tmp/qkvhome .venv/bin/python bench/eval_backends.py [--max-tokens 385] [--window 128]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parents[1] / "tests" / "data" / "eval" / "apache2_excerpt.txt"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--max-tokens", type=int, default=385)
    args = ap.parse_args()
    from qkv.tools.evaluate.perplexity import perplexity_of
    from qkv.tools.evaluate.perplexity_gguf import open_llama, perplexity_gguf
    from qkv.tools.hf_models import load_causal_lm
    from qkv.tools.paths import bundled_gemma_gguf

    text = TEXT.read_text()
    model, tok = load_causal_lm("gemma3-270m")
    gguf = bundled_gemma_gguf()
    llm = open_llama(gguf, n_ctx=args.window)
    w = args.window
    print(f"text {TEXT.name}, first {args.max_tokens} tokens (BOS included), window {w}")
    print(f"{'stride':>6} {'hf ppl':>9} {'llama ppl':>9} {'gap %':>6} {'hf bpb':>7} {'ll bpb':>7} {'time ll/hf':>10}")
    rows = []
    for stride in (w, w // 2, w // 4):
        t0 = time.perf_counter()
        hf = perplexity_of(model, tok, text, window=w, stride=stride, max_tokens=args.max_tokens)
        t1 = time.perf_counter()
        ll = perplexity_gguf(gguf, text, window=w, stride=stride, max_tokens=args.max_tokens, llm=llm)
        t2 = time.perf_counter()
        rows.append((stride, hf, ll))
        print(f"{stride:>6} {hf.token_ppl:>9.3f} {ll.token_ppl:>9.3f} {100 * (ll.token_ppl / hf.token_ppl - 1):>6.2f} "
              f"{hf.bits_per_byte:>7.4f} {ll.bits_per_byte:>7.4f} {(t2 - t1) / (t1 - t0):>10.2f}")
    llm.close()
    print(f"strided (stride {w // 4}) / non-overlapping token ppl, transformers: "
          f"{rows[2][1].token_ppl / rows[0][1].token_ppl:.3f}")


if __name__ == "__main__":
    main()
