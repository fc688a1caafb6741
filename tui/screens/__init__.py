"""Modal screens: help (keys and commands), sessions (list and resume), LLM backend selection."""
