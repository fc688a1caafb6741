"""Scaling laws: compute-optimal model and data size for a FLOP budget (Chinchilla), the parametric
loss L(N, D) with the original and the Epoch AI refit constants, training FLOPs C ≈ 6ND, training
time on a named GPU at a stated MFU, and the inference-aware optimum (Sardana et al. 2024).

Which law does what:
- The compute-optimal split uses Hoffmann et al.'s Approach 1 (the minimum over training curves),
  the approach behind their Table 3 and the "≈20 tokens per parameter" rule. Its power law
  N_opt = G·C^a is fitted here to the nine Table 3 rows (a comes out ≈ 0.50, inside the paper's
  interval 0.488–0.502), so it reproduces the table.
- The loss uses Approach 3's parametric form L(N, D) = E + A/N^α + B/D^β. Hoffmann's rounded
  constants imply a different optimum (Approach 3: N_opt ∝ C^0.45, ~40-70 tokens/param at today's
  budgets), which disagrees with the 20 tokens/param rule; Besiroglu et al. (2024) refit the same
  data and their constants agree with Approach 1/2. Both optima are reported beside the headline.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from qkv.tools.errors import BadInput
from qkv.tools.knowledge.schema import GPUS_ALIASES, Figure, also, analytic, cited, collect_sources
from qkv.tools.knowledge.tables import chinchilla_table3

FitName = Literal["hoffmann", "epoch"]
SECONDS_PER_DAY = 86_400.0
DEFAULT_MFU = 0.4  # between PaLM's 46.2% and Llama 3 405B's 38-43% (chowdhery2022, dubey2024)


class LossFit(BaseModel):
    """Constants of L(N, D) = E + A/N^alpha + B/D^beta (N parameters, D training tokens, loss in nats/token)."""

    name: FitName
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    @property
    def a(self) -> float:
        """Exponent of N_opt ∝ C^a implied by the fit (β / (α + β))."""
        return self.beta / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """N_opt = G · (C/6)^a with G = (αA / βB)^(1/(α+β)) (Hoffmann et al. 2022, eq. 4)."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))


FITS: dict[str, LossFit] = {
    # Hoffmann et al. 2022 §3.3 / Appendix D.2, rounded as printed.
    "hoffmann": LossFit(name="hoffmann", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28, source="hoffmann2022"),
    # Besiroglu et al. 2024 (Epoch AI), refit of the same data (their Table 1).
    "epoch": LossFit(name="epoch", E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
                     source="besiroglu2024"),
}


def get_fit(fit: str) -> LossFit:
    if fit not in FITS:
        raise BadInput(f"unknown scaling-law fit '{fit}'", expected="a fit name", choices=list(FITS))
    return FITS[fit]


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise BadInput(f"{name} is {value!r}", expected="a finite positive number")


def training_flops(params: float, tokens: float) -> float:
    """C ≈ 6·N·D training FLOPs (2ND forward + 4ND backward; Kaplan et al. 2020 §2.1)."""
    _positive("params", params)
    _positive("tokens", tokens)
    return 6.0 * params * tokens


def loss(params: float, tokens: float, fit: str = "epoch") -> float:
    """Predicted pre-training loss (nats/token on MassiveText) of N params trained on D tokens."""
    _positive("params", params)
    _positive("tokens", tokens)
    f = get_fit(fit)
    return f.E + f.A / params**f.alpha + f.B / tokens**f.beta


class OptimalPoint(BaseModel):
    """A compute-optimal (N, D) for one budget and the method that produced it."""

    method: str
    params: float
    tokens: float
    flops: float
    tokens_per_param: float
    source: str


@cache
def approach1_law() -> tuple[float, float]:
    """(G, a) of N_opt = G · C^a, least squares in log space over Hoffmann et al.'s Table 3 rows."""
    xs = [math.log(r["flops"]) for r in chinchilla_table3()]
    ys = [math.log(r["params"]) for r in chinchilla_table3()]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    a = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - a * mx), a


def _point(method: str, n: float, c: float, source: str) -> OptimalPoint:
    d = c / (6 * n)
    return OptimalPoint(method=method, params=n, tokens=d, flops=c, tokens_per_param=d / n, source=source)


def chinchilla_optimal(flops: float) -> OptimalPoint:
    """Compute-optimal N and D for a budget of `flops` (Approach 1, reproduces Table 3)."""
    _positive("flops", flops)
    g, a = approach1_law()
    return _point("approach1", g * flops**a, flops, "hoffmann2022")


def optimal_for_params(params: float) -> OptimalPoint:
    """The budget (and tokens) for which `params` is compute-optimal (inverse of Approach 1)."""
    _positive("params", params)
    g, a = approach1_law()
    return _point("approach1", params, (params / g) ** (1 / a), "hoffmann2022")


def optimal_for_tokens(tokens: float) -> OptimalPoint:
    """The budget and model size for which `tokens` is compute-optimal: D = C^(1-a) / (6G)."""
    _positive("tokens", tokens)
    g, a = approach1_law()
    c = (6 * g * tokens) ** (1 / (1 - a))
    return _point("approach1", g * c**a, c, "hoffmann2022")


def approach3_optimal(flops: float, fit: str = "epoch") -> OptimalPoint:
    """Closed-form optimum of the parametric fit: N = G (C/6)^a, D = (C/6)/N."""
    _positive("flops", flops)
    f = get_fit(fit)
    return _point(f"approach3-{f.name}", f.G * (flops / 6) ** f.a, flops, f.source)


def peak_flops_per_s(gpu: str) -> tuple[float, str]:
    """Dense 16-bit tensor-core peak of a catalog GPU in FLOP/s, and which column was used."""
    from qkv.tools.catalog.gpus import get_gpu

    spec = get_gpu(gpu)
    if spec.bf16_dense_tflops:
        return spec.bf16_dense_tflops * 1e12, f"{spec.name} dense BF16 {spec.bf16_dense_tflops:g} TFLOP/s"
    if spec.fp16_dense_tflops:
        return spec.fp16_dense_tflops * 1e12, f"{spec.name} dense FP16 {spec.fp16_dense_tflops:g} TFLOP/s (no BF16)"
    raise BadInput(f"GPU '{spec.name}' has no 16-bit tensor peak in the catalog", expected="another GPU")


def _check_mfu(mfu: float) -> None:
    if not (math.isfinite(mfu) and 0 < mfu <= 1):
        raise BadInput(f"MFU is {mfu!r}", expected="a fraction in (0, 1], e.g. 0.4 (PaLM reached 0.462)")


def training_days(flops: float, gpu: str, gpus: int = 1, mfu: float = DEFAULT_MFU) -> float:
    """Wall-clock days to spend `flops` on `gpus` GPUs running at `mfu` of their dense peak."""
    _positive("flops", flops)
    _check_mfu(mfu)
    if gpus < 1:
        raise BadInput(f"--gpus is {gpus}", expected="a positive integer")
    peak, _ = peak_flops_per_s(gpu)
    return flops / (gpus * peak * mfu) / SECONDS_PER_DAY


def flops_in_gpu_time(gpu: str, gpu_hours: float, mfu: float = DEFAULT_MFU) -> float:
    """Training FLOPs a GPU-time budget delivers: GPU-hours × 3600 × dense 16-bit peak × MFU (the inverse
    of `training_days`)."""
    _positive("GPU-hours", gpu_hours)
    _check_mfu(mfu)
    peak, _ = peak_flops_per_s(gpu)
    return gpu_hours * 3600.0 * peak * mfu


def inference_aware_optimal(params: float, tokens: float, inference_tokens: float, fit: str = "epoch",
                            ) -> OptimalPoint:
    """Sardana et al. 2024: the (N, D) reaching the same loss as (params, tokens) that minimises
    training + inference FLOPs, 6ND + 2N·D_inf. Smaller model, more training tokens."""
    _positive("inference_tokens", inference_tokens)
    f = get_fit(fit)
    target = loss(params, tokens, fit)
    budget = target - f.E

    def d_for(n: float) -> float:
        rest = budget - f.A / n**f.alpha
        return (f.B / rest) ** (1 / f.beta) if rest > 0 else math.inf

    def total(log_n: float) -> float:
        n = math.exp(log_n)
        return 6 * n * d_for(n) + 2 * n * inference_tokens

    # The feasible N must leave room for the data term: A/N^α < L - E.
    lo = math.log((f.A / budget) ** (1 / f.alpha)) + 1e-6
    hi = math.log(params) + 1e-9  # inference only ever pushes N down
    grid = [lo + (hi - lo) * k / 400 for k in range(401)]
    best = min(grid, key=total)
    step = (hi - lo) / 400
    a, b = max(lo, best - step), min(hi, best + step)
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(80):  # golden-section refinement of the unimodal total
        x1, x2 = b - phi * (b - a), a + phi * (b - a)
        if total(x1) < total(x2):
            b = x2
        else:
            a = x1
    n = math.exp((a + b) / 2)
    d = d_for(n)
    return OptimalPoint(method=f"inference-aware-{f.name}", params=n, tokens=d, flops=6 * n * d,
                        tokens_per_param=d / n, source="sardana2024")


# ----- the tool -----

class ScaleRequest(BaseModel):
    """A scaling question: give exactly one of a FLOP budget, a model size or a token count."""

    model_config = ConfigDict(extra="forbid")

    flops: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                description="training compute budget in FLOPs (e.g. 1e21)")
    params: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                 description="model parameters N (e.g. 7e9)")
    tokens: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                 description="training tokens D (e.g. 2e12)")
    fit: FitName = Field("epoch", description="loss-law constants: 'epoch' (Besiroglu 2024 refit) or 'hoffmann'")
    gpu: str | None = Field(None, description="catalog GPU for the training-time estimate (`qkv gpus`), e.g. "
                                              "'h100-sxm'; it needs a dense 16-bit TFLOP/s figure")
    gpus: int = Field(1, validation_alias=AliasChoices("gpus", *GPUS_ALIASES), json_schema_extra={"minimum": 1},
                      description="number of GPUs" + also(*GPUS_ALIASES))
    mfu: float = Field(DEFAULT_MFU, json_schema_extra={"exclusiveMinimum": 0, "maximum": 1},
                       description="model FLOPs utilisation, a fraction in (0, 1]")
    inference_tokens: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                           description="tokens expected to be served over the model's life")

    @model_validator(mode="after")
    def _check(self) -> ScaleRequest:
        given = [k for k in ("flops", "params", "tokens") if getattr(self, k) is not None]
        if len(given) != 1:
            raise BadInput("no size given" if not given else " and ".join("--" + g for g in given) + " given together",
                           expected="exactly one of --flops, --params or --tokens")
        _positive(f"--{given[0]}", getattr(self, given[0]))
        _check_mfu(self.mfu)
        if self.gpus < 1:
            raise BadInput(f"--gpus is {self.gpus}", expected="a positive integer")
        if self.inference_tokens is not None:
            _positive("--inference-tokens", self.inference_tokens)
        return self


class TrainingTime(BaseModel):
    """Days to spend the budget on a GPU count at an MFU."""

    gpu: str
    gpus: int
    peak_flops_per_gpu: Figure
    mfu: Figure
    days: Figure
    gpu_hours: Figure


class InferenceAdjustment(BaseModel):
    """The inference-aware optimum for the same loss (Sardana et al. 2024)."""

    inference_tokens: float
    params: Figure
    tokens: Figure
    training_flops: Figure
    total_flops: Figure = Field(description="training + inference FLOPs of the adjusted model")
    chinchilla_total_flops: Figure = Field(description="training + inference FLOPs of the Chinchilla model")
    saving: Figure = Field(description="fraction of total FLOPs saved by the adjustment")


class ScaleReport(BaseModel):
    """Compute-optimal size, data, loss and cost for one scaling question, every figure sourced."""

    request: ScaleRequest
    basis: Literal["flops", "params", "tokens"]
    params: Figure
    tokens: Figure
    flops: Figure
    tokens_per_param: Figure
    loss: Figure
    fit: LossFit
    alternatives: list[OptimalPoint] = Field(description="Approach-3 optima of both fits at the same budget")
    table3_nearest: dict[str, float] = Field(description="the nearest Hoffmann et al. Table 3 row (cited)")
    training: TrainingTime | None = None
    inference: InferenceAdjustment | None = None
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def scale(req: ScaleRequest) -> ScaleReport:
    """Compute-optimal N, D and C for a budget, model size or token count, with the predicted loss,
    the training time on a GPU count, and the inference-aware adjustment when usage is given."""
    g, a = approach1_law()
    law = f"N_opt = {g:.4g}·C^{a:.4f} (Approach 1 fitted to Table 3)"
    if req.flops is not None:
        basis, pt = "flops", chinchilla_optimal(req.flops)
        n_fig = analytic(pt.params, law, "hoffmann2022", unit="params")
        d_fig = analytic(pt.tokens, "D = C / (6N)", "hoffmann2022", "kaplan2020", unit="tokens")
        c_fig = analytic(pt.flops, "given", unit="FLOPs")
    elif req.params is not None:
        basis, pt = "params", optimal_for_params(req.params)
        n_fig = analytic(pt.params, "given", unit="params")
        c_fig = analytic(pt.flops, f"C = (N/G)^(1/a), inverse of {law}", "hoffmann2022", unit="FLOPs")
        d_fig = analytic(pt.tokens, "D = C / (6N)", "hoffmann2022", "kaplan2020", unit="tokens")
    else:
        assert req.tokens is not None
        basis, pt = "tokens", optimal_for_tokens(req.tokens)
        d_fig = analytic(pt.tokens, "given", unit="tokens")
        c_fig = analytic(pt.flops, f"C = (6·G·D)^(1/(1-a)) from {law}", "hoffmann2022", unit="FLOPs")
        n_fig = analytic(pt.params, "N = C / (6D)", "hoffmann2022", unit="params")
    fit = FITS[req.fit]
    l_fig = analytic(loss(pt.params, pt.tokens, req.fit),
                     f"E + A/N^α + B/D^β with E={fit.E}, A={fit.A}, B={fit.B}, α={fit.alpha}, β={fit.beta}",
                     fit.source, unit="nats/token")
    alts = [approach3_optimal(pt.flops, name) for name in FITS]
    nearest = min(chinchilla_table3(), key=lambda r: abs(math.log(r["flops"] / pt.flops)))
    h3 = next(p for p in alts if p.method == "approach3-hoffmann")
    notes = [
        f"Compute-optimal split from Approach 1: {_fmt(pt.tokens_per_param)} tokens per parameter at this budget "
        "(the '≈20 tokens/param' rule).",
        f"Hoffmann's rounded Approach-3 constants put the optimum at {_fmt(h3.params)} params × "
        f"{_fmt(h3.tokens)} tokens ({h3.tokens_per_param:.0f} tokens/param): they disagree with the 20 tokens/param "
        "rule; the Epoch AI refit (Besiroglu et al. 2024) of the same data is consistent with it.",
        f"Loss uses the '{fit.name}' constants ({fit.source}); it is MassiveText loss, not your data's.",
    ]
    report = ScaleReport(
        request=req, basis=basis, params=n_fig, tokens=d_fig, flops=c_fig,
        tokens_per_param=analytic(pt.tokens_per_param, "D / N", unit="tokens/param"),
        loss=l_fig, fit=fit, alternatives=alts, table3_nearest=nearest, notes=notes,
    )
    if req.gpu:
        peak, column = peak_flops_per_s(req.gpu)
        days = training_days(pt.flops, req.gpu, req.gpus, req.mfu)
        mfu_fig = (cited(req.mfu, "chowdhery2022", "dubey2024", note="assumed; PaLM 46.2%, Llama 3 38-43%")
                   if req.mfu == DEFAULT_MFU else analytic(req.mfu, "given"))
        report.training = TrainingTime(
            gpu=req.gpu, gpus=req.gpus, peak_flops_per_gpu=cited(peak, "qkv-gpus", unit="FLOP/s", note=column),
            mfu=mfu_fig,
            days=analytic(days, "C / (gpus × peak × MFU) / 86400", "chowdhery2022", unit="days"),
            gpu_hours=analytic(days * 24 * req.gpus, "days × 24 × gpus", unit="GPU-hours"),
        )
    if req.inference_tokens:
        adj = inference_aware_optimal(pt.params, pt.tokens, req.inference_tokens, req.fit)
        chin_total = pt.flops + 2 * pt.params * req.inference_tokens
        adj_total = adj.flops + 2 * adj.params * req.inference_tokens
        form = "argmin_N 6·N·D(N) + 2·N·D_inf subject to L(N, D(N)) = L(N_chin, D_chin)"
        report.inference = InferenceAdjustment(
            inference_tokens=req.inference_tokens,
            params=analytic(adj.params, form, "sardana2024", fit.source, unit="params"),
            tokens=analytic(adj.tokens, "D(N) = (B / (L - E - A/N^α))^(1/β)", "sardana2024", unit="tokens"),
            training_flops=analytic(adj.flops, "6ND", "kaplan2020", unit="FLOPs"),
            total_flops=analytic(adj_total, "6ND + 2N·D_inf", "sardana2024", unit="FLOPs"),
            chinchilla_total_flops=analytic(chin_total, "6ND + 2N·D_inf", "sardana2024", unit="FLOPs"),
            saving=analytic(1 - adj_total / chin_total, "1 - adjusted / Chinchilla", unit="fraction"),
        )
        report.notes.append(
            f"Serving {_fmt(req.inference_tokens)} tokens: a {_fmt(adj.params)}-param model trained on "
            f"{_fmt(adj.tokens)} tokens reaches the same loss for {100 * (1 - adj_total / chin_total):.1f}% "
            "fewer total FLOPs (Sardana et al. 2024).")
    report.sources = collect_sources(report, fit.source, "hoffmann2022")
    return report

