"""`qkv design`: not registered yet (see the open issue)."""
