"""`qkv evaluate`: not registered yet (see the open issue)."""
