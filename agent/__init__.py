"""qkv.agent: the LangGraph state machine, report rendering, LLM backends, CLI and MCP server."""
