"""The Textual app (a later issue)."""
