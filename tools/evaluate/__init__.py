"""Evaluator: perplexity, task metrics computed the way the field computes them, faithfulness proxies."""
