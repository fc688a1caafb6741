"""Intake: free text → `TaskSpec`, by rules first ("7B", "24GB", "RTX 4090", "2x A100", "legal
summarisation", "16k-token contracts"); a language model, when configured, only fills gaps.

Then the defaults: what is still missing is either asked (interactive, `decisive_gaps`) or assumed
and stated (`apply_defaults`), so a report never hides a guess."""

from __future__ import annotations

import re
from typing import Any

from qkv.agent.graph.schemas import Assumption, Stated, TaskSpec
from qkv.tools.errors import BadInput

# ---------------------------------------------------------------------------------------------- vocab
NUMBER_WORDS = {"one": 1, "a": 1, "an": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4, "six": 6,
                "eight": 8, "sixteen": 16, "dual": 2, "quad": 4}
# Family names without a memory size: the common variant, stated as an assumption when used.
GPU_SHORTHANDS = {"a100": "a100-80gb-sxm", "a6000": "rtx-a6000", "v100": "v100-32gb", "a10g": "a10g"}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower())


# ------------------------------------------------------------------------------------------------ GPUs
def _gpu_index() -> list[tuple[str, str]]:
    """(alias phrase, catalog name), longest phrase first, spaces and dashes interchangeable."""
    from qkv.tools.catalog.gpus import list_gpus

    pairs: dict[str, str] = {}
    for g in list_gpus():
        for key in [g.name, g.display_name, *g.aliases]:
            pairs[key.lower()] = g.name
    pairs.update(GPU_SHORTHANDS)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def _phrase_pattern(phrase: str) -> str:
    parts = [re.escape(p) for p in re.split(r"[\s\-]+", phrase) if p]
    return r"(?<![\w.])" + r"[\s\-]*".join(parts) + r"s?(?![\w])"


def parse_gpu(text: str) -> tuple[str | None, int | None, str]:
    """The catalog GPU named in `text`, its count, and the text with that mention removed."""
    low = _norm(text)
    for phrase, name in _gpu_index():
        m = re.search(_phrase_pattern(phrase), low)
        if not m:
            continue
        count = None
        before = low[: m.start()]
        cm = re.search(r"(\d+|" + "|".join(NUMBER_WORDS) + r")\s*(?:x|×|\*)?\s*(?:nvidia\s+|amd\s+)?$", before)
        if cm:
            word = cm.group(1)
            count = int(word) if word.isdigit() else NUMBER_WORDS[word]
        am = re.match(r"\s*(?:gpus?\s*)?(?:x|×|\*)\s*(\d+)", low[m.end():])
        if am:
            count = int(am.group(1))
        return name, count, low[: m.start()] + " " + low[m.end():]
    return None, None, low


# A word shaped like a GPU model: vendor series (RTX 5095, GTX 1080, Radeon …) or a datacentre part
# (H900, A6000, L40S, MI355X, B300, V100). Only consulted when no catalog GPU matched.
_GPU_SHAPED = re.compile(
    r"(?<![\w.])(?:(?:nvidia|geforce|amd)\s+)?(?:(?:rtx|gtx|quadro|titan|radeon|rx|arc)[\s-]*[a-z]?\d{3,4}"
    r"(?:[\s-]*(?:ti|super|xt|xtx|ada))*|(?:mi)\d{3}[a-z]?|[ahlbv]\d{2,4}[a-z]?|gb\d{3})(?![\w])", re.I)


def unknown_gpu_mention(text: str) -> tuple[str, list[str]] | None:
    """A GPU-shaped word the catalog does not know ('rtx 5095', 'h900') with the closest catalog names,
    or None when the text names a catalog GPU or nothing GPU-shaped."""
    from qkv.tools.catalog.gpus import list_gpus
    from qkv.tools.errors import closest

    if parse_gpu(text)[0] is not None:
        return None
    m = _GPU_SHAPED.search(_norm(text))
    if not m:
        return None
    word = m.group(0).strip()
    names = [g.name for g in list_gpus()]
    # Compare like with like: 'rtx 5095' against 'rtx-5090' (spaces and dashes are one separator).
    key = re.sub(r"[\s-]+", "-", word)
    return word, closest(key, names, limit=4)


def plural_gpu_mention(text: str) -> str | None:
    """'H100s', 'A100s', 'GPUs': a plural GPU mention with no count in front of it (None otherwise)."""
    low = _norm(text)
    for phrase, _name in [*_gpu_index(), ("gpu", "gpu")]:
        m = re.search(_phrase_pattern(phrase), low)
        if m and not phrase.endswith("s") and low[m.end() - 1] == "s":
            return m.group(0).strip()
    return None


def _gpu_count(task: TaskSpec, gpu: str | None, doc_tokens: int | None) -> tuple[int, str]:
    """The GPU count when none was stated, with its reason: one, unless the request names its GPUs in the
    plural ('on H100s') for serving a named model — then the fewest that hold the stated load and meet its
    targets, from the serving planner."""
    plural = plural_gpu_mention(task.text)
    if not plural:
        return 1, "no GPU count given"
    if task.mode == "inference" and task.base_model and gpu:
        from pydantic import ValidationError

        from qkv.tools.errors import QkvError
        from qkv.tools.serve import ServingRequest, fewest_gpus
        from qkv.tools.serve.roofline import planning_output_tokens

        context = task.max_doc_tokens or doc_tokens or 2048
        try:
            plan = fewest_gpus(ServingRequest(model=task.base_model, gpu=gpu, concurrency=task.concurrency or 1,
                                              context=context, output_tokens=planning_output_tokens(context),
                                              tpot_ms=task.latency_ms))
        except (QkvError, ValidationError):  # a load the planner does not take: plan on one, and say so
            plan = None
        if plan is not None:
            # A target the GPU's figures cannot check is not claimed (the planner notes it): say "load" alone.
            what = "load and targets" if plan.targets else "load"
            return plan.gpus_used, (f"'{plural}' with no count: the fewest that hold the stated {what} "
                                    f"(qkv.tools.serve.fewest_gpus: {plan.gpus_used}, TP {plan.tensor_parallel}, "
                                    f"{plan.weights} weights); state the count to plan on yours")
    return 1, f"'{plural}' with no count: planned on one; state the count to plan on yours"


def gpu_for_vram(vram_gib: float, consumer: bool) -> str | None:
    """A catalog GPU with exactly this memory (consumer class when asked), fastest bf16 first."""
    from qkv.tools.catalog.gpus import list_gpus

    pool = [g for g in list_gpus() if abs(g.memory_gib - vram_gib) < 0.5 and not g.unified_memory]
    if consumer:
        pool = [g for g in pool if g.gpu_class == "consumer"] or pool
    pool.sort(key=lambda g: (-(g.bf16_dense_tflops or 0.0), g.name))
    return pool[0].name if pool else None


# ---------------------------------------------------------------------------------------------- models
# ------------------------------------------------------------------------------------------------ parse
def parse_task(text: str, *, gpu: str | None = None, gpus: int | None = None, model: str | None = None,
               corpus: list[str] | None = None) -> TaskSpec:
    """Rule-based intake (agent/graph/bind.py). Explicit options win over what the text says; each is
    recorded in `stated` with the option it came from. BadInput for empty text or impossible values."""
    if text is None or not str(text).strip():
        raise BadInput("the design request is empty",
                       expected='a task such as "fine-tune a 7B model for legal summarisation on one 24 GB GPU"')
    raw = str(text).strip()
    if len(raw) > 4000:
        raise BadInput(f"the design request is {len(raw):,} characters long", expected="a task of under 4,000")
    from qkv.agent.graph.bind import bind_request

    bound = bind_request(raw)
    spec = dict(bound.fields)
    stated = [Stated(field=s.field, value=s.value, text=s.text) for s in bound.stated]

    def option(field: str, value: Any, flag: str) -> None:
        nonlocal stated
        stated = [s for s in stated if s.field != field]
        stated.append(Stated(field=field, value=value, text=f"{flag} {value}"))
        spec[field] = value

    # Explicit options override the text.
    if gpu:
        from qkv.tools.catalog.gpus import get_gpu

        option("gpu", get_gpu(gpu).name, "--gpu")
    if gpus is not None:
        if gpus <= 0:
            raise BadInput(f"--gpus is {gpus}", expected="a positive integer")
        option("gpus", gpus, "--gpus")
    if model:
        option("base_model", model, "--base-model")
    if corpus:
        option("corpus", [str(c) for c in corpus], "--corpus")
    task = TaskSpec(text=raw, **spec, stated=stated, not_understood=list(bound.not_understood),
                    constraints=list(bound.notes))
    if not (task.objective or task.base_model or task.param_budget or task.mode != "fine-tune"):
        raise BadInput(f"no task found in {raw[:80]!r}",
                       expected="a task (summarise, classify, translate, answer questions, chat, pre-train, "
                                "serve ...) or a model ('7B', 'llama-2-7b'); e.g. "
                                '"fine-tune a 7B model for legal summarisation on one 24 GB GPU"')
    return task


def parse_fields(text: str) -> dict[str, Any]:
    """Every TaskSpec field the rules find in `text` (absent keys or None: not stated)."""
    from qkv.agent.graph.bind import bind_request

    return dict(bind_request(text).fields)


def parse_sampling(low: str) -> dict[str, Any] | None:
    """Decoding settings stated in the request ('temperature 1.0', 'top-p 1', 'no top-k', 'greedy')."""
    return parse_fields(low).get("sampling")


# ------------------------------------------------------------------------------------------ the defaults
DEFAULT_GPU = "rtx-4090"
DEFAULT_CPU_RAM_GIB = 16.0
DEFAULT_MODELS = {"understanding": "bert-base-uncased", "translation": "t5-base", "generation": "llama-2-7b"}
UNDERSTANDING = {"classification", "qa", "ner", "retrieval"}


def objective_kind(objective: str | None) -> str:
    if objective == "translation":
        return "translation"
    return "understanding" if objective in UNDERSTANDING else "generation"


def decisive_gaps(task: TaskSpec) -> list[tuple[str, str]]:
    """Facts without which the design would be a guess: (field, question), most decisive first."""
    gaps = []
    if not task.gpu and not task.vram_gib and not task.cpu_only:
        gaps.append(("gpu", "Which GPU(s) will this run on, and how many? (e.g. 'one RTX 4090', '2x A100 80GB')"))
    if not task.base_model and not task.param_budget and task.mode != "pre-train":
        gaps.append(("model", "Which base model, or what parameter budget? (e.g. 'llama-2-7b', '7B', '1B')"))
    if task.mode == "pre-train" and not (task.param_budget or task.compute_flops or task.data_tokens):
        gaps.append(("model", "What budget: a model size, a compute budget or a token count? (e.g. '1B', "
                              "'1e21 FLOPs', '300B tokens')"))
    return gaps


def apply_answer(task: TaskSpec, field: str, answer: str) -> TaskSpec:
    """Merge a user's answer to one intake question into the task, bound by the same rules as a request
    (counts in words, memory sizes, CPU), and recorded in `stated` with the answer's words."""
    answer = (answer or "").strip()
    if not answer:
        return task
    from qkv.agent.graph.bind import bind_request

    bound = bind_request(answer)
    found = bound.fields
    keys: tuple[str, ...]
    if field == "gpu":
        keys = ("gpu", "gpus", "vram_gib", "cpu_only", "ram_gib")
        named = any(found.get(k) for k in ("gpu", "vram_gib", "cpu_only"))
        from qkv.agent.graph.bind_core import COUNT, count_of

        bare = re.fullmatch(r"(?:just\s+|only\s+)?" + COUNT + r"(?:\s+of\s+them)?[.!]?", answer, re.I)
        if bare and not found.get("gpus"):
            found = {**found, "gpus": count_of(bare.group(1))}  # a bare count answers "how many"
        # An answer that does not decide gets the question back with what is missing, never a default.
        if not named and re.search(r"not sure|don'?t know|no idea|whatever|anything|unsure|\bany\b", answer, re.I):
            raise BadInput(f"'{answer}' leaves the GPU open, and the memory plan depends on it",
                           expected="a GPU name ('one RTX 4090'), its memory ('a 16 GB card') or 'CPU only'")
        if not named and found.get("gpus"):
            raise BadInput(f"'{answer}' says how many GPUs ({found['gpus']}) but not which",
                           expected=f"the model or memory too, e.g. '{found['gpus']}x RTX 4090' or "
                                    f"'{found['gpus']} cards with 24 GB'")
        if not named:
            from qkv.tools.catalog.gpus import get_gpu

            name = get_gpu(answer).name  # UnknownName with the closest catalog names
            found = {**found, "gpu": name}
    elif field == "model":
        keys = ("base_model", "param_budget", "compute_flops", "data_tokens")
        if not any(found.get(k) for k in keys):
            from qkv.tools.modelref import resolve_model

            resolve_model(answer)  # a file or catalog name; UnknownName with the closest names otherwise
            found = {**found, "base_model": answer}
    else:
        keys = tuple(found)
    update = {k: found[k] for k in keys if found.get(k) is not None}
    stated = [s for s in task.stated if s.field not in update]
    words = {s.field: s.text for s in bound.stated}
    stated += [Stated(field=k, value=update[k], text=words.get(k, answer)) for k in update]
    return task.model_copy(update={**update, "stated": stated})


def check_answer(field: str, answer: str | None) -> None:
    """Raise the error `apply_answer` would raise for this answer, without touching any session.

    Called before an answer is handed to the graph: LangGraph keeps a delivered resume value with the
    paused step, so an answer that failed inside the graph would be replayed on every later resume."""
    apply_answer(TaskSpec(text=f"check the answer to the {field} question"), field, answer or "")


def apply_defaults(task: TaskSpec) -> tuple[TaskSpec, list[Assumption]]:
    """Fill what is still missing with stated defaults (command-line mode, or after the questions).

    What the user stated is never replaced here: a memory size without a GPU name becomes a GPU of exactly
    that memory, a CPU request a CPU device, a GPU-time budget a FLOPs budget at a stated MFU."""
    from qkv.tools.catalog.gpus import stated_device

    out: list[Assumption] = []
    update: dict[str, Any] = {}
    if not task.objective:
        update["objective"] = "generation" if task.mode != "pre-train" else "language-modelling"
        out.append(Assumption(field="objective", value=update["objective"],
                              reason="no task verb found; a decoder-only generator is the general case"))
    kind = objective_kind(update.get("objective", task.objective))
    if task.cpu_only and not task.gpu:
        ram = task.ram_gib or DEFAULT_CPU_RAM_GIB
        update["gpu"] = stated_device("cpu", ram)
        out.append(Assumption(field="gpu", value=update["gpu"], reason=(
            f"CPU only: planned in {ram:g} GiB of RAM" + ("" if task.ram_gib else " (RAM not stated; a common "
                                                          "laptop/desktop size)") + ", no CUDA context")))
    elif not task.gpu and task.vram_gib:
        # A catalog card of exactly that memory may stand in (its bandwidth and kernels then come from a stated
        # assumption); with none, a GPU of exactly that memory and unknown speed — never a bigger card.
        low = _norm(task.text)
        stand_in = gpu_for_vram(task.vram_gib, consumer=bool(re.search(r"consumer|gaming|geforce|desktop", low)))
        if stand_in:
            update["gpu"] = stand_in
            out.append(Assumption(field="gpu", value=stand_in, reason=(
                f"only the memory ({task.vram_gib:g} GB) was given; {stand_in}, the catalog GPU with exactly that "
                "memory and the highest bf16 throughput, stands for it (its bandwidth and kernel support are "
                "assumed)")))
        else:
            update["gpu"] = stated_device("gpu", task.vram_gib)
            out.append(Assumption(field="gpu", value=update["gpu"], reason=(
                f"only the memory was stated: planned as a GPU of exactly {task.vram_gib:g} GiB (GPU makers' GB "
                "are binary); no catalog GPU has that memory, so its bandwidth and compute are unknown and speed "
                "bounds are left out")))
    elif not task.gpu:
        unknown = unknown_gpu_mention(task.text)
        reason = ("no GPU named; one 24 GB consumer card is the common single-GPU setup" if unknown is None else
                  f"'{unknown[0]}' is not a GPU in the catalog (closest: {', '.join(unknown[1][:4]) or 'none'}); "
                  "planned on one 24 GB consumer card until a catalog GPU is named")
        out.append(Assumption(field="gpu", value=DEFAULT_GPU, reason=reason))
        update["gpu"] = DEFAULT_GPU
    elif task.gpu == GPU_SHORTHANDS["a100"] and re.search(r"(?<![\w-])a100s?(?![\w-])(?!\s*(?:40|80))",
                                                          _norm(task.text)):
        out.append(Assumption(field="gpu", value=task.gpu, reason="'A100' without a size: the 80 GB SXM4 variant"))
    if not task.gpus:
        gpus, reason = _gpu_count(task, update.get("gpu", task.gpu), update.get("max_doc_tokens"))
        update["gpus"] = gpus
        out.append(Assumption(field="gpus", value=gpus, reason=reason))
    if task.gpu_hours and not task.compute_flops and task.mode == "pre-train":
        from qkv.tools.knowledge.scaling import DEFAULT_MFU, flops_in_gpu_time

        gpu = update.get("gpu", task.gpu)
        update["compute_flops"] = flops_in_gpu_time(gpu, task.gpu_hours, DEFAULT_MFU)
        out.append(Assumption(field="compute_flops", value=update["compute_flops"], reason=(
            f"{task.gpu_hours:,.0f} GPU-hours on {gpu} at {DEFAULT_MFU:.0%} MFU (between PaLM's 46% and Llama 3's "
            "38-43%; qkv.tools.knowledge.scaling.flops_in_gpu_time)")))
    if not task.base_model and not task.param_budget and task.mode != "pre-train":
        update["base_model"] = DEFAULT_MODELS[kind]
        out.append(Assumption(field="base_model", value=update["base_model"],
                              reason=f"no model or size named; the catalog's reference {kind} model"))
    if task.mode == "pre-train" and not (task.param_budget or task.compute_flops or task.data_tokens
                                         or update.get("compute_flops")):
        update["param_budget"] = 1e9
        out.append(Assumption(field="param_budget", value=1e9,
                              reason="pre-training with no size, compute or token budget stated; 1B parameters"))
    if not task.doc_tokens and not task.max_doc_tokens:
        length = 2048 if kind == "generation" else 512
        update["doc_tokens"] = update["max_doc_tokens"] = length
        out.append(Assumption(field="max_doc_tokens", value=length,
                              reason="document length not stated; a typical "
                                     f"{'training sequence' if length == 2048 else 'sentence-to-paragraph input'}"))
    if task.deploy and not task.concurrency:
        update["concurrency"] = 1
        out.append(Assumption(field="concurrency", value=1, reason="serving load not stated; one stream"))
    return task.model_copy(update=update), out
