"""Binding rules for the training plan a request states: models and sizes, data and compute budgets,
method, sharding, precision, batch, sequence length and learning settings."""

from __future__ import annotations

import re

from qkv.agent.graph.bind_core import (
    NUM,
    SCALE,
    WEIGHT_FORMATS,
    Binder,
    k_tokens,
    phrase_pattern,
    to_number,
)
from qkv.tools.errors import BadInput


def _models(b: Binder) -> None:
    from qkv.tools.catalog.models import list_models

    pairs: dict[str, str] = {}
    for mdl in list_models():
        for key in [mdl.name, *mdl.aliases, *([mdl.hub_id] if mdl.hub_id else [])]:
            if len(key) >= 4:
                pairs[key.lower()] = mdl.name
    for phrase, name in sorted(pairs.items(), key=lambda kv: -len(kv[0])):
        for m in b.find(phrase_pattern(phrase)):
            b.bind("base_model", name, m.span())
            return
    # A family named without the catalog's spelling: 'Mistral', 'Qwen 2.5 7B' (the follow-up rule, shared).
    from qkv.agent.graph.revise import family_span, model_mention
    from qkv.tools.errors import UnknownName

    span = family_span(b.text)
    if span is None or not b.free(*span):
        return
    if re.search(r"pre-?train|from scratch", b.text, re.I) and not re.search(r"\d", b.text[span[0]:span[1]]):
        return  # 'pre-train a small GPT from scratch': a kind of model, not a checkpoint to start from
    try:
        name = model_mention(b.text, None)
    except UnknownName as exc:
        b.flag(f"{b.text[span[0]:span[1]]} ({exc})", span)
        return
    if name:
        b.bind("base_model", name, span)


def _sizes(b: Binder) -> None:
    """Parameter budgets ('7B', '1.1 billion parameters', '300M'), data ('300B tokens', '200k dialogues')."""
    scale = r"\s*(k|m|b|t|thousand|million|billion|trillion)\b"
    data_nouns = (r"(?:labell?ed\s+|training\s+|annotated\s+|customer\s+|support\s+|legal\s+|medical\s+|"
                  r"example\s+|english\s+|parallel\s+|in-domain\s+){0,2}(?:examples|samples|dialogues|dialogs|"
                  r"conversations|chats|documents|docs|pairs|rows|sentences|sentence pairs|comments|tickets|reviews|"
                  r"articles|records|questions|contracts|emails|transcripts|instructions|prompts|summaries|papers|"
                  r"files|texts|items|utterances)\b")
    for m in b.find(NUM + r"(?:" + scale + r")?\s+(?:[\w&'-]+\s+)?" + data_nouns):
        value = to_number(m.group(1)) * (SCALE[m.group(2).lower()] if m.group(2) else 1)
        b.bind("data_examples", int(value), m.span())
        break
    for m in b.find(r"(?<![\w.])(-?)" + NUM + r"\s*(m|b|t|million|billion|trillion)\b(?:[\s-]*(?:param(?:eter)?s?|"
                    r"parameters?))?(?:[\s-]*(?:model|llm|transformer|decoder|encoder))?"):
        if m.group(1):
            raise BadInput(f"a negative model size: {m.group(0)!r}", expected="a positive size such as '7B'")
        value = to_number(m.group(2)) * SCALE[m.group(3).lower()]
        b.bind("param_budget", value, m.span())
        break


def _data_tokens(b: Binder) -> None:
    """'300B tokens', '500M tokens of medical text', '40,000,000,000 tokens': data, not a length (a million
    tokens or more, not said to be a context or window)."""
    not_length = r"(?![\s-]*(?:of\s+)?(?:context|window|long|sequences?|per|inputs?|prompts?|documents?|docs|each))"
    for m in b.find(r"(-?)" + NUM + r"(?:\s*(k|m|b|t|thousand|million|billion|trillion)\b)?[\s-]*(?:training\s+)?"
                    r"tokens?\b" + not_length):
        value = to_number(m.group(2)) * (SCALE[m.group(3).lower()] if m.group(3) else 1)
        if value < 1e6:
            continue
        if m.group(1):
            raise BadInput(f"a negative token count: {m.group(0)!r}", expected="a positive number of tokens")
        b.bind("data_tokens", value, m.span())
        return


def _compute(b: Binder) -> None:
    for m in b.find(r"(?:(\d+(?:\.\d+)?)\s*(?:x|×|\*)?\s*(?:10\s*\^\s*|e\+?)|\b10\s*\^\s*)(\d+)\s*"
                    r"(?:training\s+)?flops?\b(?:\s+(?:of\s+compute|budget))?"):
        b.bind("compute_flops", float(m.group(1) or 1) * 10 ** int(m.group(2)), m.span())
        return


def _method(b: Binder) -> None:
    rules = [
        (r"\bq-?lora\b|\b4[- ]?bit\s+lora\b|\blora\s+(?:on|over)\s+(?:a\s+)?4[- ]?bit", "qlora"),
        (r"\blora(?:\b|(?=_))|\bpeft\b|\badapters?\b", "lora"),
        (r"\bfull(?:y)?[\s-]+(?:parameter\s+)?fine[\s-]?tun\w*|\bfull[\s-]+(?:parameter\s+)?(?:ft|training|"
         r"finetun\w*)|\bfull-parameter\b|\bfine[\s-]?tune all (?:the )?(?:parameters|weights)|\bfull ft\b", "full"),
        (r"\ball (?:the )?(?:model(?:'s)? )?(?:parameters|weights)\b", "full"),
    ]
    for pattern, method in rules:
        for m in re.finditer(pattern, b.text, re.I):
            if re.search(r"\b(?:no|not|without|instead of|rather than)\s+(?:a\s+|any\s+)?$", b.text[:m.start()], re.I):
                b.consume(m.span())  # 'no LoRA please': understood, and not the method
                continue
            b.bind("method", method, m.span(), consume=b.free(*m.span()))
            return


def _sharding(b: Binder) -> None:
    rules = [
        (r"\b(?:no|without)\s+sharding\b|\bunsharded\b", "none"),
        (r"\b(?:deepspeed\s+)?zero[\s-]*(?:stage[\s-]*)?([123])\b|\bzero[\s-]*stage[\s-]*([123])", None),
        (r"\bfsdp2?\b|\bfully[\s-]sharded(?:\s+data[\s-]parallel)?", "fsdp"),
        (r"\bddp\b|\bdistributed data[\s-]parallel\b|\bdata[\s-]parallel(?:ism)?\b", "ddp"),
    ]
    for pattern, name in rules:
        for m in b.find(pattern):
            stage = next((g for g in m.groups() if g), None) if name is None else None
            b.bind("sharding", name or f"zero{stage}", m.span())
            return


def _precision(b: Binder, inference: bool) -> None:
    """Training precision ('in bf16', 'fp16 mixed precision') or, when serving, the weight format."""
    for m in b.find(r"\b(q[4-8]_(?:k_m|k|0))\b|\b(q[4-8])[\s-]?(k[\s-]?m|0)\b"):
        key = (m.group(1) or f"{m.group(2)}_{m.group(3)}").lower().replace("-", "_").replace(" ", "_")
        key = key.replace("km", "k_m").replace("k_m_", "k_m")
        fmt = WEIGHT_FORMATS.get(key)
        if fmt:
            b.bind("weights", fmt, m.span())
    for m in b.find(r"\bnf4\b|\b(?:int|8[\s-]?bit)8?\s+(?:weights|quantization|quantisation)\b|\bint8\b|"
                    r"\bint4\b|\b4[\s-]?bit\b|\b8[\s-]?bit\b"):
        word = m.group(0).lower()
        if "nf4" in word:
            fmt = "nf4"
        elif "8" in word:
            fmt = "int8"
        else:
            fmt = "nf4"
        if inference or re.search(r"weights|serv|deploy|quantiz|quantis", b.text[max(0, m.start() - 30):m.end() + 30],
                                  re.I):
            if "8" in word and re.search(r"optim|adam", b.text[m.end():m.end() + 20], re.I):
                continue
            b.bind("weights", fmt, m.span())
    names = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half precision": "fp16",
             "fp32": "fp32", "float32": "fp32", "full precision": "fp32", "single precision": "fp32"}
    for m in b.find(r"\b(bf16|bfloat16|fp16|float16|half precision|fp32|float32|full precision|single precision)"
                    r"(?:\s+mixed(?:\s+precision)?)?\b"):
        value = names[m.group(1).lower()]
        serving = inference or re.search(r"\bserv|\bdeploy|\binference\b|\bweights\b",
                                         b.text[max(0, m.start() - 40):m.end() + 15], re.I)
        b.bind("weights" if serving else "precision", value, m.span())
    for m in b.find(r"\bfp8\b(?:\s+(?:weights|kv(?:\s+cache)?))?"):
        b.flag(f"{m.group(0)} (FP8 formats are not modelled yet: planned in bf16/int8/4-bit)", m.span())


def _batch(b: Binder) -> None:
    for m in b.find(r"(?:micro[\s-]?batch(?:[\s-]?size)?|per[\s-](?:device|gpu)(?:\s+train(?:ing)?)?\s+batch"
                    r"(?:\s+size)?|batch[\s-]?size|batch\s+of|mbs|bs)\s*(?:of|=|:|is)?\s*(-?\d+)\b"):
        n = int(m.group(1))
        if n <= 0:
            raise BadInput(f"micro-batch {n}: {m.group(0)!r}", expected="a positive number of sequences")
        b.bind("micro_batch", n, m.span())
        break
    for m in b.find(r"(?:gradient|grad)[\s_-]?accum(?:ulation)?(?:[\s_-]?steps?)?\s*(?:of|=|:)?\s*(\d+)\b|"
                    r"(\d+)\s*(?:gradient\s+|grad\s+)?accumulation\s+steps|"
                    r"accumulat\w*\s+(?:the\s+)?(?:gradients?\s+)?(?:over|across|for)\s+(\d+)\s+(?:steps|micro-?batches)"):
        n = int(m.group(1) or m.group(2) or m.group(3))
        if n <= 0:
            raise BadInput(f"gradient accumulation {n}", expected="a positive number of steps")
        b.bind("grad_accum", n, m.span())
        break
    for m in b.find(r"(\d+)\s*epochs?\b|\bepochs?\s*(?:=|:|of)?\s*(\d+)\b"):
        if int(m.group(1) or m.group(2)) <= 0:
            raise BadInput(f"{m.group(0)!r}", expected="a positive number of epochs")
        b.bind("epochs", int(m.group(1) or m.group(2)), m.span())
        break


def _sequence(b: Binder) -> None:
    """Sequence lengths: 'seq len 4096', '4k context', '16,000-token documents', 'up to 12k tokens'."""
    k = r"\s*(k|m)?\b"
    typical = r"(?:average|averaging|typical(?:ly)?|mean|median|around|about|roughly|~)\s*(?:of\s+)?$"
    key = r"(?:seq(?:uence)?[\s_-]*len(?:gth)?|max(?:imum)?[\s_-]*(?:input[\s_-]*|seq(?:uence)?[\s_-]*)?length|" \
          r"context(?:\s+(?:length|window|size|of))?|ctx|window(?:\s+of)?|max_seq_length|max_length)"
    for m in b.find(key + r"\s*(?:of|=|:|is|up to)?\s*(-?)" + NUM + k + r"(?:[\s-]*tokens?)?"):
        n = k_tokens(to_number(m.group(2)), m.group(3))
        if m.group(1) or n <= 0:
            raise BadInput(f"a length of {'-' if m.group(1) else ''}{n} tokens: {m.group(0)!r}",
                           expected="a positive number of tokens")
        b.bind("max_doc_tokens", n, m.span())
    for m in b.find(NUM + k + r"[\s-]*(?:tokens?|tok)\b(?:[\s-]*(?:of\s+)?(?:context(?:\s+(?:length|window))?|window|"
                    r"long|each|per\s+\w+|sequences?|inputs?|prompts?|documents?|docs|conversations?|contracts?|"
                    r"transcripts?|texts?|records?|examples?))?"):
        n = k_tokens(to_number(m.group(1)), m.group(2))
        if n <= 0:
            raise BadInput(f"a length of {n} tokens", expected="a positive number of tokens")
        before = b.text[max(0, m.start() - 30):m.start()]
        if re.search(r"(?:new|output|generat\w*)\s*$", before, re.I):
            continue
        if re.search(typical, before, re.I):
            b.bind("doc_tokens", n, m.span())
        elif b.bind("max_doc_tokens", n, m.span()) and not re.search(r"up to|max|at most|longest|context|window",
                                                                      b.text[max(0, m.start() - 25):m.end() + 12],
                                                                      re.I):
            b.out.fields.setdefault("doc_tokens", n)  # a plain length is also the typical one
    for m in b.find(NUM + r"(k)\s+(?:context|window|sequences?|inputs?|prompts?)\b"):
        b.bind("max_doc_tokens", k_tokens(to_number(m.group(1)), m.group(2)), m.span())
    # 'the longest is 9,000' (after a typical length in tokens): the maximum in the same unit.
    if "doc_tokens" in b.out.fields:
        for m in b.find(r"\b(?:the\s+)?(?:longest|maximum|max)(?:\s+(?:one|document|doc|input))?\s+(?:is|at|of)\s+"
                        + NUM + k + r"(?:\s*tokens?)?"):
            b.bind("max_doc_tokens", k_tokens(to_number(m.group(1)), m.group(2)), m.span())


def _learning(b: Binder) -> None:
    lr = r"([-−]?\d+(?:\.\d+)?(?:\s*(?:e|x\s*10\^?|×\s*10\^?)\s*[-−]\s*\d+)?)"
    for m in b.find(r"(?:learning[\s_-]rate|\blr)\s*(?:of|=|:|is|at)?\s*" + lr):
        text = re.sub(r"\s+", "", m.group(1)).replace("−", "-")
        if text.startswith("-") or float(re.sub(r"(?:x|×)10\^?", "e", text)) <= 0:
            raise BadInput(f"learning rate {text}", expected="a positive learning rate such as 2e-4")
        text = re.sub(r"(?:x|×)10\^?", "e", text)
        b.bind("learning_rate", float(text), m.span())
        break
    for m in b.find(r"(?:lora\s+)?(?:rank|\br)[\s-]*(?:of|=|:)?\s*(\d+)\b"):
        if int(m.group(1)) <= 0:
            raise BadInput(f"LoRA rank {m.group(1)}", expected="a positive rank such as 8, 16 or 64")
        b.bind("lora_r", int(m.group(1)), m.span())
        break
    for m in b.find(r"(?:lora[\s_]+)?alpha\s*(?:of|=|:)?\s*(\d+)\b"):
        b.bind("lora_alpha", int(m.group(1)), m.span())
        break
    mod = r"(?:[a-z_]+_proj|c_attn|c_proj|c_fc|query|key|value|dense|wi|wo|q|k|v|o)"
    sep = r"\s*(?:,|and|&|\+|/)\s*"
    for m in b.find(r"\btarget(?:ing|s)?\s*:?\s+(?:modules?\s*:?\s+)?(?:the\s+)?(" + mod + r"(?:" + sep + mod
                    + r")*)(?:\s+(?:modules|projections|layers))?"):
        names = [n for n in re.split(r"\s*(?:,|and|&|\+|/)\s*", m.group(1).lower()) if n]
        b.bind("lora_targets", names, m.span())
        break
    for m in b.find(r"\ball[\s-]linear(?:\s+(?:layers|modules|projections))?\b|\bevery linear layer\b"):
        b.bind("lora_targets", ["all-linear"], m.span())
        break
    for m in b.find(r"\b(?:no|without|disable[d]?)\s+(?:gradient|activation)\s+checkpointing\b"):
        b.bind("grad_checkpointing", False, m.span())
    for m in b.find(r"\b(?:gradient|activation)[\s-]checkpointing\b|\bgrad(?:ient)?[\s-]ckpt\b"):
        b.bind("grad_checkpointing", True, m.span())


