"""Decode throughput of qkv's local backend against two baselines measured in the same run:

1. raw llama-cpp-python (`Llama.create_completion`) on the same GGUF, prompt, threads and context:
   qkv adds tokenization for the context guard and a policy check, and must keep >= 0.95 of the rate;
2. transformers CPU generation of the same model (Gemma 3 270M, dequantised to float32 by
   `qkv.tools.hf_models.load_causal_lm`): what a user would otherwise run.

Decode rate = (N - 1) / (t(N new tokens) - t(1 new token)): the difference removes prompt processing
and call overhead that both calls share, leaving the per-token cost. Sides alternate round by round and
the median is reported, so load from other processes hits both alike. Greedy decoding everywhere.

    QKV_HOME=/tmp/qkvhome .venv/bin/python bench/generate_throughput.py --threads 1 --tokens 64
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _timed(fn) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, n


def decode_rate(call, tokens: int, rounds_out: list[float]) -> None:
    """Append one decode-rate sample (tokens/s) for `call(max_new_tokens) -> tokens generated`."""
    t1, _ = _timed(lambda: call(1))
    tn, n = _timed(lambda: call(tokens))
    if n < 2 or tn <= t1:
        raise SystemExit(f"bench: only {n} tokens generated; pick a prompt that does not end early")
    rounds_out.append((n - 1) / (tn - t1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m", help="GGUF path or alias (gemma3-270m, smollm2)")
    ap.add_argument("--prompt", default="The history of the Roman Empire begins with")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per timed generation")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (median reported)")
    ap.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                    help="CPU threads for every side (llama.cpp's own default: half the cores)")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers baseline")
    args = ap.parse_args()

    import llama_cpp

    from qkv.tools.llm.base import open_backend
    from qkv.tools.sampling import SamplingPolicy

    qkv = open_backend("local", model=args.model, n_ctx=args.n_ctx, n_threads=args.threads)
    raw = llama_cpp.Llama(model_path=str(qkv.path), n_ctx=args.n_ctx, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)

    def run_qkv(n: int) -> int:
        return qkv.complete(args.prompt, SamplingPolicy.greedy(n)).completion_tokens

    def run_raw(n: int) -> int:
        out = raw.create_completion(args.prompt, max_tokens=n, temperature=0.0, top_p=1.0, top_k=0, min_p=0.0,
                                    repeat_penalty=1.0)
        return out["usage"]["completion_tokens"]

    print(f"model {qkv.model}, prompt {args.prompt!r}, {args.tokens} new tokens, threads {args.threads}, "
          f"n_ctx {args.n_ctx}, {args.rounds} rounds", file=sys.stderr)
    run_qkv(2), run_raw(2)  # warm-up: first-call allocations, page cache
    q_rates: list[float] = []
    r_rates: list[float] = []
    for i in range(args.rounds):
        sides = [(run_raw, r_rates), (run_qkv, q_rates)]
        for call, out in (sides if i % 2 == 0 else sides[::-1]):
            decode_rate(call, args.tokens, out)
        print(f"  round {i + 1}: raw {r_rates[-1]:.1f} tok/s, qkv {q_rates[-1]:.1f} tok/s", file=sys.stderr)
    qkv_rate, raw_rate = statistics.median(q_rates), statistics.median(r_rates)
    same_text = (qkv.complete(args.prompt, SamplingPolicy.greedy(args.tokens)).text ==
                 raw.create_completion(args.prompt, max_tokens=args.tokens, temperature=0.0, top_k=0, top_p=1.0,
                                       min_p=0.0, repeat_penalty=1.0)["choices"][0]["text"])
    raw.close()
    qkv.close()
    print(f"decode tok/s (median of {args.rounds})  qkv local: {qkv_rate:.1f}  raw llama-cpp-python: {raw_rate:.1f}  "
          f"ratio qkv/raw: {qkv_rate / raw_rate:.3f} (target >= 0.95)  same greedy text: {same_text}")

    if args.no_transformers:
        return
    import torch

    from qkv.tools.hf_models import load_causal_lm

    torch.set_num_threads(args.threads)
    ref = "gemma3-270m" if args.model.lower() in ("gemma3-270m", "gemma-3-270m", "gemma", "bundled") else args.model
    model, tok = load_causal_lm(ref)
    ids = tok(args.prompt, return_tensors="pt")

    def run_hf(n: int) -> int:
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        return out.shape[1] - ids["input_ids"].shape[1]

    run_hf(2)
    h_rates: list[float] = []
    for i in range(max(2, args.rounds // 2)):
        decode_rate(run_hf, args.tokens, h_rates)
        print(f"  round {i + 1}: transformers {h_rates[-1]:.1f} tok/s", file=sys.stderr)
    hf_rate = statistics.median(h_rates)
    print(f"decode tok/s  transformers {torch.__version__} CPU float32 (sdpa): {hf_rate:.1f}  "
          f"ratio qkv/transformers: {qkv_rate / hf_rate:.2f}")


if __name__ == "__main__":
    main()
