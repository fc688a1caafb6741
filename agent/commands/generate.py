"""`qkv generate`: not registered yet (see the open issue)."""
