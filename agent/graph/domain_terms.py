"""Terms of art per domain: what the tokenizer audit plan asks to score (data, not logic)."""

from __future__ import annotations

TERMS: dict[str, tuple[str, ...]] = {
    "legal": ("indemnification", "estoppel", "force majeure", "subrogation", "promissory", "res judicata",
              "hereinafter", "notwithstanding", "tortious", "certiorari", "lien", "escrow", "severability",
              "arbitration", "jurisdiction", "covenant"),
    "medical": ("myocardial infarction", "tachycardia", "hepatotoxicity", "thrombocytopenia", "anticoagulant",
                "echocardiogram", "metastasis", "nephrotoxicity", "bronchiectasis", "hyperkalemia"),
    "finance": ("amortization", "collateralized", "EBITDA", "securitization", "derivatives", "liquidity",
                "subordinated", "covenant-lite", "hedging", "annuity"),
    "code": ("async", "kwargs", "namespace", "serialization", "middleware", "mutex", "lambda", "decorator"),
    "scientific": ("heteroscedasticity", "photoluminescence", "eigenvalue", "stochastic", "phylogenetic",
                   "spectroscopy", "isotope", "catalysis"),
}
