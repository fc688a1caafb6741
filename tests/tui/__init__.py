"""Tests of the Textual TUI (pilot and snapshot tests) and its rule-based chat logic."""
