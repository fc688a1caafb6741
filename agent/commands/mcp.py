"""`qkv mcp`: not registered yet (see the open issue)."""
