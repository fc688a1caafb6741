"""qkv.tools: typed, standalone tools (pydantic in, pydantic out). Never imports the agent or the TUI."""
