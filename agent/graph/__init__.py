"""The LangGraph state machine that walks the five design steps."""
