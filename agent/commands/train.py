"""`qkv train`: not registered yet (see the open issue)."""
