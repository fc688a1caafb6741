"""Task metrics computed the way the field computes them, so numbers compare with papers:

- BLEU and chrF from sacreBLEU (Post 2018), reported with the sacreBLEU signature;
- ROUGE-1/2/L/Lsum from Google's rouge-score (the package behind most summarisation papers), stemming
  stated; rougeLsum needs newline-separated sentences (See et al. 2017 convention);
- SQuAD v1.1 exact match and F1 with the official script's answer normalisation (lower-case, strip
  punctuation, drop articles a/an/the, collapse whitespace), max over gold answers;
- accuracy and macro-F1 (unweighted mean of per-label F1 over labels seen in gold or predictions, as
  scikit-learn's f1_score(average='macro')).

No BLEU or ROUGE arithmetic is written here: those come from the libraries."""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from importlib.metadata import version

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.schema import ItemScore, MetricPlan, MetricPlanItem, MetricValue, TaskKind

Refs = Sequence[Sequence[str]]  # per item, one or more references

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "summarisation": ROUGE_TYPES,
    "translation": ("bleu", "chrf"),
    "qa": ("exact_match", "f1"),
    "classification": ("accuracy", "macro_f1"),
    "language-modelling": (),
}


# -------------------------------------------------------------------------------------------- the plan
_PPL = MetricPlanItem(
    name="perplexity (token) + bits per byte + word perplexity",
    why="how well the model predicts held-out text; bits/byte compares models with different tokenizers",
    library="qkv.tools.evaluate.perplexity (strided sliding window)",
    source="HF transformers docs 'Perplexity of fixed-length models'; lm-eval-harness bits_per_byte/word_perplexity",
    comparable_when="same text, window and stride; token perplexity only with the same tokenizer")

_PLAN: dict[str, list[MetricPlanItem]] = {
    "summarisation": [MetricPlanItem(
        name="ROUGE-1/2/L/Lsum (F1)", why="n-gram and longest-common-subsequence overlap with reference summaries",
        library="rouge-score (google-research)", source="Lin 2004; google-research/rouge README (rougeLsum = "
        "summary-level LCS over newline-separated sentences, the See et al. 2017 CNN/DM convention)",
        comparable_when="same stemming (use_stemmer) and sentence splitting for rougeLsum")],
    "translation": [
        MetricPlanItem(name="BLEU", why="corpus n-gram precision with brevity penalty", library="sacrebleu",
                       source="Papineni et al. 2002; Post 2018 'A Call for Clarity in Reporting BLEU Scores'",
                       comparable_when="identical sacreBLEU signature (nrefs|case|eff|tok|smooth|version); "
                                       "tok 13a for English, zh / ja-mecab / ko-mecab for CJK targets"),
        MetricPlanItem(name="chrF", why="character n-gram F-score, robust to morphology", library="sacrebleu",
                       source="Popović 2015; sacreBLEU chrF signature", comparable_when="same chrF signature")],
    "qa": [MetricPlanItem(
        name="Exact match and token F1", why="extractive answers: exact string vs partial token overlap",
        library="qkv.tools.evaluate.metrics (official SQuAD v1.1 normalisation)",
        source="Rajpurkar et al. 2016; SQuAD v1.1 evaluate script normalize_answer / f1_score",
        comparable_when="same normalisation; max over gold answers")],
    "classification": [MetricPlanItem(
        name="Accuracy and macro-F1", why="macro-F1 weights every label equally, exposing minority-class failure",
        library="qkv.tools.evaluate.metrics", source="scikit-learn f1_score(average='macro') definition",
        comparable_when="same label set")],
    "language-modelling": [],
}


def metric_plan(task: TaskKind | str) -> MetricPlan:
    """The metrics to report for a task kind, with why and where each convention comes from.
    Perplexity (and bits per byte) is always in the plan."""
    if task not in _PLAN:
        from qkv.tools.errors import UnknownName, closest

        raise UnknownName(f"unknown task kind '{task}'", choices=closest(str(task), _PLAN) or list(_PLAN))
    notes = []
    if task != "language-modelling":
        notes.append("generation-based scores depend on the decoding policy: report it with the numbers")
    if task == "summarisation":
        notes.append("pair ROUGE with the faithfulness proxies and a blind human review: ROUGE rewards overlap, "
                     "not correctness")
    return MetricPlan(task=task, metrics=[_PPL, *_PLAN[task]], notes=notes)


# ------------------------------------------------------------------------------------------- BLEU / chrF
def _ref_streams(refs: Refs) -> list[list[str]]:
    counts = {len(r) for r in refs}
    if len(counts) != 1:
        raise BadInput("items have different numbers of references",
                       expected="the same number of references for every item (sacreBLEU reference streams)")
    n = counts.pop()
    return [[r[i] for r in refs] for i in range(n)]


def bleu(predictions: Sequence[str], references: Refs, *, tokenize: str | None = None,
         lowercase: bool = False) -> MetricValue:
    """Corpus BLEU from sacreBLEU, with its signature (default tokenizer 13a)."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize, lowercase=lowercase)
    res = metric.corpus_score(list(predictions), _ref_streams(references))
    return MetricValue(
        name="bleu", value=res.score, scale="0-100", library=f"sacrebleu {version('sacrebleu')}",
        signature=str(metric.get_signature()),
        details={"bp": res.bp, "sys_len": res.sys_len, "ref_len": res.ref_len,
                 "precisions": "/".join(f"{p:.1f}" for p in res.precisions)})


def chrf(predictions: Sequence[str], references: Refs) -> MetricValue:
    """Corpus chrF (character 6-grams, beta 2) from sacreBLEU, with its signature."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    res = metric.corpus_score(list(predictions), _ref_streams(references))
    return MetricValue(name="chrf", value=res.score, scale="0-100", library=f"sacrebleu {version('sacrebleu')}",
                       signature=str(metric.get_signature()))


def sentence_bleu_chrf(prediction: str, refs: Sequence[str]) -> dict[str, float]:
    from sacrebleu.metrics import BLEU, CHRF

    return {"bleu": BLEU(effective_order=True).sentence_score(prediction, list(refs)).score,
            "chrf": CHRF().sentence_score(prediction, list(refs)).score}


# ----------------------------------------------------------------------------------------------- ROUGE
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> str:
    """rougeLsum wants one sentence per line; texts that already have newlines are kept as they are,
    others are split after . ! ? followed by a capital or digit (nltk's punkt data is not available offline)."""
    text = text.strip()
    if "\n" in text:
        return "\n".join(line.strip() for line in text.splitlines() if line.strip())
    return "\n".join(s.strip() for s in _SENT_END.split(text) if s.strip())


def rouge(predictions: Sequence[str], references: Refs, *, stemming: bool = True,
          per_item: list[dict[str, float]] | None = None) -> list[MetricValue]:
    """Mean ROUGE-1/2/L/Lsum F1 over items from rouge-score (max over references per item)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=stemming)
    sums = dict.fromkeys(ROUGE_TYPES, 0.0)
    for i, (pred, refs) in enumerate(zip(predictions, references, strict=True)):
        targets = [split_sentences(r) for r in refs]
        scores = scorer.score_multi(targets, split_sentences(pred))
        for k in ROUGE_TYPES:
            sums[k] += scores[k].fmeasure
        if per_item is not None:
            per_item[i].update({k: scores[k].fmeasure for k in ROUGE_TYPES})
    n = max(len(predictions), 1)
    sig = (f"rouge-score {version('rouge-score')}|use_stemmer:{'yes' if stemming else 'no'}|F1 mean over items|"
           "max over refs|rougeLsum: newline-separated sentences")
    return [MetricValue(name=k, value=sums[k] / n, library=f"rouge-score {version('rouge-score')}", signature=sig)
            for k in ROUGE_TYPES]


# --------------------------------------------------------------------------------------------- SQuAD
def normalize_answer(s: str) -> str:
    """The SQuAD v1.1 evaluate script's normalize_answer: lower, drop punctuation, drop articles, fix spaces."""
    s = s.lower()
    exclude = set(string.punctuation)
    s = "".join(ch for ch in s if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def squad_f1(prediction: str, gold: str) -> float:
    """Token-overlap F1 after normalisation (SQuAD v1.1 f1_score)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad(predictions: Sequence[str], references: Refs,
          per_item: list[dict[str, float]] | None = None) -> list[MetricValue]:
    """Mean EM and F1 (0-1), each the max over an item's gold answers, as the official script does."""
    em = f1 = 0.0
    for i, (pred, golds) in enumerate(zip(predictions, references, strict=True)):
        e = max(squad_exact_match(pred, g) for g in golds)
        f = max(squad_f1(pred, g) for g in golds)
        em, f1 = em + e, f1 + f
        if per_item is not None:
            per_item[i].update({"exact_match": e, "f1": f})
    n = max(len(predictions), 1)
    lib = "qkv (SQuAD v1.1 evaluate-script normalisation)"
    sig = "normalize_answer: lower|no punctuation|no articles a/an/the|whitespace collapsed; max over golds"
    return [MetricValue(name="exact_match", value=em / n, library=lib, signature=sig),
            MetricValue(name="f1", value=f1 / n, library=lib, signature=sig)]


# ------------------------------------------------------------------------------------------ classification
def classification(predictions: Sequence[str], references: Sequence[str],
                   per_item: list[dict[str, float]] | None = None) -> list[MetricValue]:
    """Accuracy and macro-F1 over string labels (stripped; case kept)."""
    preds = [p.strip() for p in predictions]
    golds = [g.strip() for g in references]
    correct = [float(p == g) for p, g in zip(preds, golds, strict=True)]
    if per_item is not None:
        for i, c in enumerate(correct):
            per_item[i]["correct"] = c
    labels = sorted(set(golds) | set(preds))
    f1s = []
    for label in labels:
        tp = sum(p == label and g == label for p, g in zip(preds, golds, strict=True))
        fp = sum(p == label and g != label for p, g in zip(preds, golds, strict=True))
        fn = sum(p != label and g == label for p, g in zip(preds, golds, strict=True))
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    lib = "qkv (scikit-learn definitions)"
    return [MetricValue(name="accuracy", value=sum(correct) / max(len(correct), 1), library=lib),
            MetricValue(name="macro_f1", value=sum(f1s) / max(len(f1s), 1), library=lib,
                        signature=f"unweighted mean over {len(labels)} labels (gold ∪ predicted)",
                        details={"labels": len(labels)})]


# ------------------------------------------------------------------------------------------- dispatcher
def score_task(task: TaskKind | str, predictions: Sequence[str], references: Refs, *, stemming: bool = True,
               bleu_tokenize: str | None = None, lowercase: bool = False,
               ) -> tuple[list[MetricValue], list[ItemScore]]:
    """The task metric(s) for `task`, corpus-level and per item."""
    if len(predictions) != len(references):
        raise BadInput(f"{len(predictions)} predictions but {len(references)} references",
                       expected="one prediction per reference item, in the same order")
    if not predictions:
        raise BadInput("no items to score", expected="at least one prediction/reference pair")
    if any(not refs for refs in references):
        raise BadInput("an item has no reference", expected="at least one reference per item")
    per: list[dict[str, float]] = [{} for _ in predictions]
    if task == "summarisation":
        metrics = rouge(predictions, references, stemming=stemming, per_item=per)
    elif task == "translation":
        metrics = [bleu(predictions, references, tokenize=bleu_tokenize, lowercase=lowercase),
                   chrf(predictions, references)]
        for i, (p, r) in enumerate(zip(predictions, references, strict=True)):
            per[i].update(sentence_bleu_chrf(p, r))
    elif task == "qa":
        metrics = squad(predictions, references, per_item=per)
    elif task == "classification":
        metrics = classification(predictions, [r[0] for r in references], per_item=per)
    elif task == "language-modelling":
        raise BadInput("language modelling is scored by perplexity, not against references",
                       expected="qkv eval --model M --text FILE (or a task: summarisation, translation, qa, "
                                "classification)")
    else:
        from qkv.tools.errors import UnknownName

        raise UnknownName(f"unknown task kind '{task}'", choices=list(TASK_METRICS))
    return metrics, [ItemScore(index=i, scores=s) for i, s in enumerate(per)]
