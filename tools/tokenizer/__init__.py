"""Tokenizer auditor: how much a tokenizer fragments a domain's text, and what to do about it."""
