"""`qkv tui`: not registered yet (see the open issue)."""
