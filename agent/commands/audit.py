"""`qkv audit`: not registered yet (see the open issue)."""
