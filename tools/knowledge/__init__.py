"""The researcher's knowledge as deterministic tools: scaling laws, sizing, hyperparameters, rules."""
