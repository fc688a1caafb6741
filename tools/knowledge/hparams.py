"""Hyperparameters by scale and method, each value with its source (hard rule 2: no default is
assumed across scales).

- pretrain: GPT-3 Table 2.1 (learning rate and batch in tokens interpolated log-log in model size),
  GPT-3 Appendix B and Llama 2 §2.2 for warmup, cosine decay to 10%, weight decay 0.1, clipping 1.0.
- full fine-tuning: Stanford Alpaca (7B: 2e-5, 13B: 1e-5), Tulu 2 (70B: 1e-5), BERT's grid for
  ~110M models (up to 5e-5); warmup ratio 0.03, cosine, no weight decay, 128 sequences a step.
- LoRA / QLoRA: the QLoRA scripts (r 64, alpha 16, all linear layers, 2e-4 up to 13B and 1e-4
  for 33B/65B, dropout 0.1 / 0.05, max grad norm 0.3, constant schedule, 3% warmup, 16 sequences
  a step, paged AdamW 32-bit, NF4 + double quant); below 1B, the LoRA paper's GPT-2 recipe.
  PEFT's LoraConfig defaults (r 8, alpha 8, dropout 0) are reported beside them for contrast.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from qkv.tools.errors import BadInput
from qkv.tools.knowledge.schema import SEQ_ALIASES, Figure, also, analytic, cited, collect_sources
from qkv.tools.knowledge.tables import gpt3_table21

if TYPE_CHECKING:
    from qkv.tools.catalog.linear_modules import LinearLayout

Method = Literal["full", "lora", "qlora", "pretrain"]

# (params, learning rate, source) anchors for full fine-tuning of decoder LMs.
FULL_FT_LR: tuple[tuple[float, float, str], ...] = (
    (1.1e8, 5e-5, "devlin2019"),  # BERT-base fine-tuning grid {5e-5, 4e-5, 3e-5, 2e-5}: its top for ~110M
    (6.7e9, 2e-5, "taori2023"),  # Alpaca LLaMA-7B
    (13e9, 1e-5, "taori2023"),  # Alpaca LLaMA-13B
    (70e9, 1e-5, "ivison2023"),  # Tulu 2 70B (2e-5 for 7B/13B)
)

# PEFT LoraConfig defaults (peft src/peft/tuners/lora/config.py).
PEFT_DEFAULTS = {"r": 8, "lora_alpha": 8, "lora_dropout": 0.0}
# The peft release whose LoraConfig.target_parameters and MoE target conversion the notes describe.
PEFT_CHECKED = "0.21.2"


class HparamRequest(BaseModel):
    """Whose hyperparameters: a model (catalog name, config.json, GGUF) or a parameter count."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="model reference (`qkv models`); its parameters are counted")
    params: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                 description="parameter count, when no model is named")
    method: Method = Field("lora", description="full fine-tune, LoRA, QLoRA, or pretraining from scratch")
    tokens: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                 description="training tokens, to turn ratios into step counts")
    seq: int = Field(2048, validation_alias=AliasChoices("seq", *SEQ_ALIASES), json_schema_extra={"minimum": 1},
                     description="tokens per training sequence (to express batches in tokens)" + also(*SEQ_ALIASES))

    @model_validator(mode="after")
    def _check(self) -> HparamRequest:
        if (self.model is None) == (self.params is None):
            raise BadInput("give exactly one of a model or --params", expected="e.g. llama-2-7b or --params 7e9")
        if self.params is not None and not (math.isfinite(self.params) and self.params > 0):
            raise BadInput(f"--params is {self.params!r}", expected="a finite positive parameter count")
        if self.tokens is not None and not (math.isfinite(self.tokens) and self.tokens > 0):
            raise BadInput(f"--tokens is {self.tokens!r}", expected="a finite positive token count")
        if self.seq <= 0:
            raise BadInput(f"--seq is {self.seq}", expected="a positive integer")
        return self


class LoraPlan(BaseModel):
    """Adapter settings, each with its source."""

    r: Figure
    alpha: Figure
    dropout: Figure
    targets: Figure
    scaling: Figure = Field(description="ΔW is scaled by alpha / r (alpha / sqrt(r) with rsLoRA)")
    peft_defaults: dict[str, float] = Field(description="PEFT LoraConfig defaults, for contrast")


class HparamPlan(BaseModel):
    """Training hyperparameters for one model size and method."""

    request: HparamRequest
    params: Figure
    method: Method
    learning_rate: Figure
    schedule: Figure
    warmup: Figure
    weight_decay: Figure
    batch_sequences: Figure
    batch_tokens: Figure
    max_grad_norm: Figure
    optimizer: Figure
    lora: LoraPlan | None = None
    quantization: Figure | None = None
    steps: Figure | None = None
    warmup_steps: Figure | None = None
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def loglog_interpolate(x: float, points: list[tuple[float, float]]) -> float:
    """Piecewise-linear interpolation in log-log space, clamped at both ends."""
    pts = sorted(points)
    if x <= pts[0][0]:
        return pts[0][1]
    if x >= pts[-1][0]:
        return pts[-1][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x0 <= x <= x1:
            t = math.log(x / x0) / math.log(x1 / x0)
            return math.exp(math.log(y0) + t * math.log(y1 / y0))
    raise AssertionError("unreachable")


def _sig3(x: float) -> float:
    """Three significant digits: an interpolated rate is not known better than that."""
    return float(f"{x:.3g}")


def _size(n: float) -> str:
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M"


def _bracket(n: float, xs: list[float]) -> str:
    lo = max([x for x in xs if x <= n], default=min(xs))
    hi = min([x for x in xs if x >= n], default=max(xs))
    if lo == hi:
        return f"the {_size(lo)} row" if n == lo else f"clamped to the {_size(lo)} row"
    return f"log-log between the {_size(lo)} and {_size(hi)} rows"


def _resolve_params(req: HparamRequest) -> tuple[float, Figure, LinearLayout | None, str | None, list[str] | None]:
    """(N, its figure, the model's real linear layout, its model_type, PEFT's default targets for it)."""
    if req.params is not None:
        return req.params, analytic(req.params, "given", unit="params"), None, None, None
    from qkv.tools.arch import spec_from_config
    from qkv.tools.catalog.linear_modules import layout_for
    from qkv.tools.modelref import resolve_model
    from qkv.tools.params import count_params

    resolved = resolve_model(req.model)  # type: ignore[arg-type]
    count = count_params(resolved)
    spec = spec_from_config(resolved.config)
    fig = analytic(count.total, f"exact closed-form count of {resolved.name} (qkv params)", unit="params")
    # Stored for catalog models (no torch); built on the meta device for any other config.
    catalog = resolved.name if resolved.origin == "catalog" else None
    layout = layout_for(resolved.config, catalog) if req.method in ("lora", "qlora") else None
    return float(count.total), fig, layout, spec.model_type, list(spec.default_lora_targets)


def _layout_notes(layout: LinearLayout, model_type: str, method: str, targets: list[str]) -> list[str]:
    """What the targets can and cannot reach, in this model as transformers builds it."""
    notes = []
    if not layout.from_transformers:
        notes.append(f"The LoRA targets come from {layout.source}.")
    if layout.fused_expert_params:
        fused = ", ".join(f"{f.name} {tuple(f.shape)}" for f in layout.fused_expert_params)
        names = ", ".join(repr(n) for n in layout.fused_expert_names)
        router = (f" (the router, {', '.join(layout.other_matrices)}, is a bare parameter too)"
                  if layout.other_matrices else "")
        notes.append(
            f"{model_type}'s MoE experts are fused 3-D parameters per layer in transformers {layout.transformers}'s "
            f"{layout.model_class} ({fused}), not nn.Linear modules{router}: LoRA on linear modules cannot reach "
            f"them, so the targets are the block's real linear modules only ({', '.join(targets)}).")
        notes.append(
            f"peft {PEFT_CHECKED} can adapt fused experts with LoraConfig(target_parameters=[{names}]) "
            "(lora.ParamWrapper: A is (r·experts, in), B (out, r·experts); it requires lora_dropout=0), and its "
            "'all-linear' string on Mixtral and Qwen2-MoE is rewritten to adapt the router and experts that way "
            "(peft utils/transformers_weight_conversion.py): pass the module names above to adapt only them.")
        if method == "qlora":
            notes.append(
                "bitsandbytes 4-bit loading converts nn.Linear modules only: the fused experts stay 16-bit (fp32 "
                "after prepare_model_for_kbit_training), so QLoRA shrinks only the linear modules (qkv vram shows "
                "the bytes).")
    return notes


def _pretrain(n: float, req: HparamRequest) -> dict[str, Figure]:
    rows = gpt3_table21()
    xs = [r["params"] for r in rows]
    how = _bracket(n, xs)
    lr = _sig3(loglog_interpolate(n, [(r["params"], r["lr"]) for r in rows]))
    batch = round(loglog_interpolate(n, [(r["params"], r["batch_tokens"]) for r in rows]))
    exact = next((r for r in rows if r["params"] == n), None)
    lr_fig = (cited(lr, "brown2020", note=f"GPT-3 Table 2.1, {exact['name']}") if exact else
              analytic(lr, f"GPT-3 Table 2.1 learning rates, {how}", "brown2020"))
    batch_fig = (cited(batch, "brown2020", unit="tokens") if exact else
                 analytic(batch, f"GPT-3 Table 2.1 batch sizes, {how}", "brown2020", unit="tokens"))
    return {
        "learning_rate": lr_fig,
        "batch_tokens": batch_fig,
        "batch_sequences": analytic(max(1, round(batch / req.seq)), "batch_tokens / seq", unit="sequences"),
        "schedule": cited("cosine decay to 10% of peak", "brown2020", "touvron2023b"),
        "warmup": cited(375e6, "brown2020", unit="tokens", note="linear warmup over the first 375M tokens"),
        "weight_decay": cited(0.1, "brown2020", "touvron2023b"),
        "max_grad_norm": cited(1.0, "brown2020", "touvron2023b"),
        "optimizer": cited("AdamW β1=0.9 β2=0.95 (eps 1e-8 GPT-3, 1e-5 Llama 2)", "brown2020", "touvron2023b",
                           "loshchilov2019"),
    }


def _full(n: float, req: HparamRequest) -> dict[str, Figure]:
    pts = [(x, y) for x, y, _ in FULL_FT_LR]
    lr = _sig3(loglog_interpolate(n, pts))
    srcs = list(dict.fromkeys(s for _, _, s in FULL_FT_LR))
    exact = next((s for x, _, s in FULL_FT_LR if x == n), None)
    lr_fig = (cited(lr, exact) if exact else
              analytic(lr, f"full fine-tuning learning rates, {_bracket(n, [x for x, _ in pts])}: 110M 5e-5 "
                       "(BERT), 7B 2e-5 and 13B 1e-5 (Alpaca), 70B 1e-5 (Tulu 2)", *srcs))
    return {
        "learning_rate": lr_fig,
        "batch_sequences": cited(128, "taori2023", "ivison2023", unit="sequences"),
        "batch_tokens": analytic(128 * req.seq, "128 sequences × seq", "taori2023", unit="tokens"),
        "schedule": cited("cosine", "taori2023", "ivison2023"),
        "warmup": cited(0.03, "taori2023", "ivison2023", unit="fraction of steps"),
        "weight_decay": cited(0.0, "taori2023", "ivison2023"),
        "max_grad_norm": cited(1.0, "touvron2023b", note="Llama 2's clipping; Alpaca/Tulu keep HF's 1.0"),
        "optimizer": cited("AdamW", "loshchilov2019", "taori2023"),
    }


# Encoder families fine-tuned with BERT's recipe (Devlin et al. 2019, Appendix A.3).
ENCODER_TYPES = ("bert", "roberta")


def _full_encoder(n: float, req: HparamRequest) -> dict[str, Figure]:
    """BERT fine-tuning (Devlin et al. 2019 A.3): batch {16, 32}, lr {5e-5, 3e-5, 2e-5}, 2-4 epochs,
    linear decay after a 10% warm-up, weight decay 0.01, clipping 1.0."""
    return {
        "learning_rate": cited(2e-5, "devlin2019", note="grid 5e-5, 3e-5, 2e-5: pick on the dev set; 2e-5 is the "
                                                         "stable end for 100k+ examples"),
        "batch_sequences": cited(32, "devlin2019", unit="sequences", note="grid {16, 32}"),
        "batch_tokens": analytic(32 * req.seq, "32 sequences × seq", "devlin2019", unit="tokens"),
        "schedule": cited("linear decay", "devlin2019"),
        "warmup": cited(0.1, "devlin2019", unit="fraction of steps", note="BERT's warmup_proportion 0.1"),
        "weight_decay": cited(0.01, "devlin2019"),
        "max_grad_norm": cited(1.0, "devlin2019"),
        "optimizer": cited("AdamW", "devlin2019", "loshchilov2019"),
    }


def _adapter(n: float, req: HparamRequest, layout: LinearLayout | None, model_type: str | None,
             peft_targets: list[str] | None) -> tuple[dict[str, Figure], LoraPlan, list[str]]:
    notes: list[str] = []
    # "All linear layers of the blocks": the model's real nn.Linear (Conv1D) leaf modules, as PEFT matches them.
    linear = layout.leaf_names if layout is not None else None
    scaling_note = "ΔW = (alpha / r)·B·A; with use_rslora alpha / sqrt(r) (Kalajdzievski 2023)"
    if n < 1e9:
        # Hu et al. 2021, GPT-2 Medium/Large E2E recipe (Table 11).
        lora = LoraPlan(
            r=cited(4, "hu2021", note="r_q = r_v = 4 (GPT-2 M/L)"),
            alpha=cited(32, "hu2021"),
            dropout=cited(0.1, "hu2021"),
            targets=cited(peft_targets or ["q_proj", "v_proj"], "hu2021", "peft",
                          note="query and value projections"),
            scaling=analytic(32 / 4, "alpha / r", "hu2021", "kalajdzievski2023", note=scaling_note),
            peft_defaults=PEFT_DEFAULTS,
        )
        figs = {
            "learning_rate": cited(2e-4, "hu2021", note="LoRA on GPT-2 Medium/Large"),
            "batch_sequences": cited(8, "hu2021", unit="sequences"),
            "schedule": cited("linear decay", "hu2021"),
            "warmup": cited(500, "hu2021", unit="steps"),
            "weight_decay": cited(0.01, "hu2021"),
        }
        notes.append("Below 1B parameters the LoRA paper's GPT-2 recipe applies; QLoRA's r=64 would be a large "
                     "fraction of a small model's width.")
    else:
        big = n > 20e9  # QLoRA's buckets: 7B/13B vs 33B/65B
        lr = 1e-4 if big else 2e-4
        dropout = 0.05 if big else 0.1
        lora = LoraPlan(
            r=cited(64, "dettmers2023"),
            alpha=cited(16, "dettmers2023"),
            dropout=cited(dropout, "dettmers2023",
                          note="0.05 for 33B/65B" if big else "0.1 for 7B/13B (the released 13B script uses 0.05)"),
            targets=cited(linear or ["all-linear"], "dettmers2023",
                          note="all linear layers of the blocks (the model's real nn.Linear modules, as transformers "
                               "builds it): needed to match 16-bit full fine-tuning"),
            scaling=analytic(16 / 64, "alpha / r", "dettmers2023", "kalajdzievski2023", note=scaling_note),
            peft_defaults=PEFT_DEFAULTS,
        )
        figs = {
            "learning_rate": cited(lr, "dettmers2023", note="1e-4 for 33B/65B" if big else "2e-4 for 7B/13B"),
            "batch_sequences": cited(16, "dettmers2023", unit="sequences",
                                     note="per-device 1 × gradient accumulation 16 in the Guanaco scripts"),
            "schedule": cited("constant", "dettmers2023"),
            "warmup": cited(0.03, "dettmers2023", unit="fraction of steps"),
            "weight_decay": cited(0.0, "dettmers2023"),
        }
        if req.method == "lora":
            notes.append("16-bit LoRA uses QLoRA's recipe: the paper shows 16-bit LoRA and QLoRA with these settings "
                         "match full 16-bit fine-tuning when every linear layer is adapted.")
    figs["batch_tokens"] = analytic(figs["batch_sequences"].value * req.seq, "batch_sequences × seq",  # type: ignore[operator]
                                    *figs["batch_sequences"].sources, unit="tokens")
    figs["max_grad_norm"] = cited(0.3, "dettmers2023")
    figs["optimizer"] = (cited("paged_adamw_32bit", "dettmers2023") if req.method == "qlora"
                         else cited("AdamW", "loshchilov2019", "hu2021"))
    notes.append(f"PEFT's LoraConfig defaults (r={PEFT_DEFAULTS['r']}, alpha={PEFT_DEFAULTS['lora_alpha']}, "
                 f"dropout={PEFT_DEFAULTS['lora_dropout']}, q/v only) are a starting point, not a recipe for "
                 f"this size.")
    if layout is not None and model_type is not None:
        notes += _layout_notes(layout, model_type, req.method, list(lora.targets.value))  # type: ignore[arg-type]
    return figs, lora, notes


# Bounds of what published recipes use (peak learning rates: GPT-3 Table 2.1 spans 6e-5…6e-4 for pre-training,
# fine-tuning recipes 1e-5…2e-4, LoRA on small models up to ~1e-3; ranks: the LoRA paper 1–64, QLoRA 64).
LR_RANGE = (1e-7, 1e-2)
MAX_PUBLISHED_RANK = 512


def stated_outliers(learning_rate: float | None, lora_r: int | None, hidden: int | None) -> list[str]:
    """Stated values outside anything published, each in words (honoured, but flagged: hard rule 2 asks
    for values scaled to the model, and these fit no scale)."""
    out = []
    lo, hi = LR_RANGE
    if learning_rate is not None and not lo <= learning_rate <= hi:
        out.append(f"learning rate {learning_rate:g} is outside {lo:g}–{hi:g}, the span of published Transformer "
                   "recipes (GPT-3 Table 2.1; LoRA; QLoRA)")
    if lora_r is not None and hidden and lora_r >= hidden:
        out.append(f"LoRA rank {lora_r} is not below the hidden size {hidden}: the update is no longer low-rank "
                   "(Hu et al. 2021)")
    elif lora_r is not None and lora_r > MAX_PUBLISHED_RANK:
        out.append(f"LoRA rank {lora_r} is above {MAX_PUBLISHED_RANK}, beyond published recipes (LoRA 1–64, QLoRA 64)")
    return out


def recommend_hparams(req: HparamRequest) -> HparamPlan:
    """Learning rate, schedule, warmup, weight decay, batch, clipping and LoRA settings for a model
    size and method, every value with its source; a 1B and a 70B model get different values."""
    n, n_fig, layout, model_type, peft_targets = _resolve_params(req)
    notes: list[str] = []
    lora = None
    quant = None
    if req.method == "pretrain":
        figs = _pretrain(n, req)
        if n > 175e9 or n < 1.25e8:
            notes.append(f"{_size(n)} is outside GPT-3's 125M-175B range: values are clamped to the nearest row.")
        if 6e9 <= n <= 75e9:
            notes.append("Cross-check: Llama 2 pre-trained 7B/13B at 3e-4 and 34B/70B at 1.5e-4 with 4M-token batches "
                         "(Touvron et al. 2023, Table 1); GPT-3's rates are the conservative end.")
    elif req.method == "full" and model_type in ENCODER_TYPES:
        figs = _full_encoder(n, req)
        notes.append("Encoder fine-tuning follows BERT's recipe (Devlin et al. 2019): 2–4 epochs, batch 16/32, "
                     "lr 2e-5…5e-5; decoder recipes (Alpaca, Tulu) do not apply.")
    elif req.method == "full":
        figs = _full(n, req)
    else:
        figs, lora, notes = _adapter(n, req, layout, model_type, peft_targets)
        if req.method == "qlora":
            quant = cited("nf4 + double quantisation, bf16 compute", "dettmers2023")
    plan = HparamPlan(request=req, params=n_fig, method=req.method, lora=lora, quantization=quant, notes=notes,
                      **figs)
    if req.tokens:
        steps = math.ceil(req.tokens / plan.batch_tokens.value)  # type: ignore[operator]
        plan.steps = analytic(steps, "ceil(tokens / batch_tokens)", unit="steps")
        w = plan.warmup
        if w.unit == "tokens":
            ws = math.ceil(w.value / plan.batch_tokens.value)  # type: ignore[operator]
        elif w.unit == "steps":
            ws = int(w.value)  # type: ignore[arg-type]
        else:
            ws = math.ceil(w.value * steps)  # type: ignore[operator]
        plan.warmup_steps = analytic(min(ws, steps), f"warmup ({w.value:g} {w.unit}) in steps", *w.sources,
                                     unit="steps")
    plan.sources = collect_sources(plan, *(["peft"] if lora else []))
    return plan
