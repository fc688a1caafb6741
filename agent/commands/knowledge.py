"""`qkv knowledge`: not registered yet (see the open issue)."""
