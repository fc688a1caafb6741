"""The wording gate (`narrate.vet`) on real strings: what the bundled models actually wrote for the worked
example is rejected, a faithful paraphrase is accepted, and a wording that drops a fact or contradicts a
decision is rejected with a reason that says so (docs/model-wording.md)."""

from __future__ import annotations

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.agent.graph.narrate import BUNDLED_SOURCE, SECTIONS, facts, narrate, templates, wording_model
from qkv.agent.graph.wording_gate import sentences, vet

# The worked example with its model named, so the facts these sentences quote stay fixed when the catalog's
# model choice improves (issue 22 moved the unnamed worked example to Qwen2.5-7B).
WORKED = "Fine-tune llama-2-7b for legal document summarisation on one consumer GPU with 24 GB of VRAM"

# What a capable model should write: every number, name and decision of the template, in prose.
FAITHFUL = {
    "objective": "Summarisation is a generation problem, so the design uses a decoder-only Transformer: a causal "
                 "decoder (GPT-style) generates the output token by token from the input and reuses its KV cache. "
                 "Training minimises token-level cross-entropy on the summary tokens only, with the document as "
                 "context masked out of the loss, and quality is reported as rouge1, rouge2, rougeL, rougeLsum and "
                 "perplexity.",
    "architecture": "The base model is llama-2-7b with 6.74B parameters, named in the request. The task needs 2048 "
                    "tokens and the window holds 4096, so the context plan is ok: 2,048 tokens fit the 4,096-token "
                    "window.",
    "efficiency": "The method is lora: after trying 7 strategies in cost order, the plan is LoRA with gradient "
                  "checkpointing. Its peak is 17.508 GiB per GPU on 1 × rtx-4090, which fits the 24.0 GiB usable.",
    "tokenization": "The tokenizer is that of llama-2-7b (not shipped offline), and it is not audited yet. No corpus "
                    "sample was given, so audit it before training with the plan below, and keep the base tokenizer "
                    "unless the audit's rule says otherwise.",
    "inference": "Serving uses bf16 weights (12.551 GiB) plus a 4.0 GiB KV cache, 18.737 GiB in all, with the "
                 "flash_attention_2 attention kernel. Decoding is beam search ×4 (length penalty 2) with at most 256 "
                 "new tokens, and decode speed is bounded above by 56.7 tokens/s (memory-bandwidth roofline).",
}


@pytest.fixture(scope="module")
def worked():
    """(allowed text, template) per section of the worked example, exactly as narrate() builds them."""
    report = design(DesignRequest(task=WORKED, llm="none"))
    base = templates(report)
    out = {}
    for section, slots in facts(report).items():
        lines = "\n".join(f"- {k}: {v}" for k, v in slots.items())
        out[section] = (lines + "\n" + base[section], base[section])
    return out


def check(worked, section: str, text: str) -> str | None:
    allowed, template = worked[section]
    return vet(text, allowed, keep=template)


@pytest.mark.parametrize("section", SECTIONS)
def test_a_faithful_paraphrase_is_accepted(worked, section):
    assert check(worked, section, FAITHFUL[section]) is None


def test_the_nonsense_that_passed_the_old_gate_is_rejected(worked):
    """SmolLM2-135M's objective for the worked example (issue 16), verbatim: accepted before this gate."""
    said = ("The task is summarisation, a generation problem. The design uses a decoder-only Transformer to generate "
            "the output token by token and reuses its KV cache; quality of this model reduces as training minimises "
            "next-token prediction loss masked to target tokens (next) - precision for each type: rouge1")
    why = check(worked, "objective", said)
    assert why.startswith('sentence 2 ("The design uses a decoder-only Transformer to generate')
    assert "list fragment" in why


@pytest.mark.parametrize(("section", "said", "reason"), [
    # the bundled SmolLM2-135M-Instruct, greedy, on the worked example (docs/model-wording.md)
    ("architecture", "Section of the design report:\nThe architecture is based on a modular, adaptive framework that "
                     "can be easily scaled up or down to fit any size. The model consists entirely from 6-bit "
                     "parameters", "echoed the instructions"),
    ("efficiency", 'Section of the design report: efficiency\nDraft. The plan is "QLoRA + gradient checkpointing" '
                   "after trying 5 strategies in cost order, with a peak on n/a for what would fit otherwise (n=1). "
                   "What could have been done differently to improve performance?", "asked a question"),
    ("inference", "Serving, bf16 weights (2.0 GiB) plus a 3-bit beam search cache; max depth = 48 new tokens/s for "
                  "decoding.", "number not in the facts: 3, 48"),
    ("efficiency", "The passage highlights the importance of thorough testing and fine-tuning in a design report.",
     "echoed the instructions ('passage')"),
    ("tokenization", "The passage is a critical example of the importance and potential risks associated with "
                     "tokenizing data, particularly when it comes to auditing.", "echoed the instructions"),
    ("objective", "The task is summarised in plain technical English using numbers.", "echoed the instructions"),
    ("architecture", "The passage highlights the limitations of a base model-based decoder for 2,048 tokens against "
                     "an optimal window size and context plan.", "echoed the instructions"),
    ("inference", "Serving 12.56 GiB + a KV cache, with memory-bandwidth penalty.", "number not in the facts: 12.56"),
    # Gemma 3 270M (base), same prompt
    ("objective", "The task is generation, so the design uses a decoder-only Transformer: the output is free text "
                  "conditioned on the input.", "says the task is generation; the facts say summarisation"),
    # the shipped prompt, on other scenarios; the same kind of sentence for the worked example's facts
    ("inference", "Decode speed is bounded above by 256 tokens/s (memory bandwidth roofline).",   # Gemma: 8 tokens/s
     "gives 256 the unit 'tokens/s', which the facts do not"),
    ("objective", "The output has no label and the goal in training minimises cross-entropy over labels.",  # SmolLM2
     "negates 'label', which the facts do not"),
    ("objective", "Training minimises token-level cross-entropy; quality is reported as rouge1, which means that it "
                  "has been trained.", "draws a conclusion the facts do not ('which means')"),                # Gemma
])
def test_what_the_bundled_models_wrote_is_rejected(worked, section, said, reason):
    assert reason in check(worked, section, said)


def test_a_wording_that_drops_a_fact_is_rejected(worked):
    no_peak = FAITHFUL["efficiency"].replace("Its peak is 17.508 GiB per GPU", "It runs")
    assert check(worked, "efficiency", no_peak) == "dropped the template's number(s): 17.508"
    no_metric = FAITHFUL["objective"].replace("rouge1, rouge2, ", "")
    assert check(worked, "objective", no_metric).startswith("dropped the template's number(s): 1, 2")
    no_kernel = FAITHFUL["inference"].replace(", with the flash_attention_2 attention kernel", "")
    assert check(worked, "inference", no_kernel) == "dropped the template's flash_attention_2, FlashAttention"
    no_family = FAITHFUL["objective"].replace("a decoder-only Transformer: a causal decoder (GPT-style)",
                                              "a Transformer that")
    assert check(worked, "objective", no_family) == "dropped the template's decoder-only"
    one_clause = "The task is summarisation, a generation problem."   # true, and most of the section gone
    assert "dropped the template's" in check(worked, "objective", one_clause)


@pytest.mark.parametrize(("section", "old", "new", "reason"), [
    ("efficiency", "which fits the", "which does not fit the", "says it is not fits; the facts say it is"),
    ("efficiency", "the plan is LoRA with", "the plan is QLoRA with LoRA and", "says QLoRA, which the facts do not"),
    ("efficiency", "24.0 GiB usable", "24.0 GiB usable in half precision", "says fp16, which the facts do not"),
    ("architecture", "The base model is llama-2-7b", "The base model is mistral-7b, not llama-2-7b",
     "names 'mistral-7b', which the facts do not"),
    ("architecture", "named in the request", "named in the Qwen request", "names 'qwen'"),
    ("objective", "a decoder-only Transformer", "an encoder-only Transformer and a decoder-only Transformer",
     "says encoder-only, which the facts do not"),
    ("tokenization", "it is not audited yet", "it has been audited", "says it is audited; the facts say it is not"),
    ("inference", "Decoding is beam search", "Decoding is greedy beam search", "says greedy, which the facts do not"),
    ("inference", "on 1 ×", "on 2 ×", "number not in the facts"),
])
def test_a_contradiction_is_rejected(worked, section, old, new, reason):
    text = FAITHFUL[section].replace(old, new)
    if section == "inference" and old == "on 1 ×":  # the inference paraphrase has no GPU count: add a wrong one
        text = FAITHFUL[section] + " It runs on 3 GPUs."
    assert text != FAITHFUL[section]
    assert reason in check(worked, section, text)


@pytest.mark.parametrize(("said", "reason"), [
    ("LoRA fits.", "2 words"),
    ("The plan is LoRA with gradient checkpointing on 1 × rtx-4090 and it fits", "does not end with a full stop"),
    ("the plan is LoRA with gradient checkpointing, which fits.", "does not start with a capital letter"),
    ("The plan is LoRA (with gradient checkpointing, which fits.", "unbalanced brackets"),
    ("- The plan is LoRA with gradient checkpointing, which fits.", "list fragment"),
    ("Method: qlora, with gradient checkpointing, which fits the rtx-4090.", "list fragment, not prose ('Method:')"),
    ("The plan is LoRA with gradient checkpointing, strategy=lora, which fits.", "list fragment"),
    ("I think the plan is LoRA with gradient checkpointing, which fits.", "first or second person"),
    ("The plan is LoRA with gradient checkpointing, which fits beautifully and elegantly.",
     "words not grounded in the facts: beautifully, elegantly"),
    ("The plan is LoRA with gradient checkpointing (a common industry default), which fits.",
     "bracketed aside not in the facts"),
    ("The plan is LoRA with gradient checkpointing, which fits and is therefore the best choice.",
     "draws a conclusion the facts do not ('therefore')"),
    ("The plan is LoRA with gradient checkpointing, gradient checkpointing, which fits.", "repeats '"),
    ("The plan is LoRA with gradient checkpointing on the rtx-1023, which fits.", "number not in the facts: 1023"),
    ("The plan is LoRA with gradient checkpointing on the rtx-4090 via DeepSpeed, which fits.",
     "says DeepSpeed, which the facts do not"),
])
def test_sentence_rules(worked, said, reason):
    assert reason in check(worked, "efficiency", said)


def test_garbled_and_repeated_words_are_rejected(worked):
    assert "garbles" in check(worked, "tokenization", "The Tokener's plan keeps the base tokenizer of llama-2-7b.")
    said = ("The task is summarisation, a generation problem: an encoder reads the source and outputs it as output.")
    assert check(worked, "objective", said) is not None


def test_sentences_split_at_full_stops_and_lines_not_decimals():
    assert sentences("A peak of 9.492 GiB. It fits (Vaswani et al. 2017).\n- a list line") == [
        "A peak of 9.492 GiB.", "It fits (Vaswani et al. 2017).", "- a list line"]


def test_which_model_words_the_report(monkeypatch):
    monkeypatch.delenv("QKV_LLM_MODEL", raising=False)
    assert wording_model("none", None) is None
    assert wording_model("local", None) is None              # the bundled SmolLM2-135M: chat only
    assert wording_model("local", "default") is None
    assert wording_model("local", "gemma3-270m") == "gemma3-270m"
    assert wording_model("local", "smollm2") == "smollm2"    # named on purpose: worded, under the gate
    assert wording_model("http://localhost:8080/v1", None) == ""
    monkeypatch.setenv("QKV_LLM_MODEL", "/models/qwen2.5-7b-instruct-q4_k_m.gguf")
    assert wording_model("local", None) == "/models/qwen2.5-7b-instruct-q4_k_m.gguf"


def test_the_default_local_run_is_the_templates_without_loading_a_model(monkeypatch):
    """`make run` (`--llm local`, no model named): every section is the template, and says why."""
    monkeypatch.delenv("QKV_LLM_MODEL", raising=False)
    report = design(DesignRequest(task=WORKED, llm="none"))
    text, source = narrate(report, "local")
    assert text == templates(report)
    assert set(source.values()) == {BUNDLED_SOURCE}
    assert narrate(report, "none") == (templates(report), {k: "template" for k in SECTIONS})
