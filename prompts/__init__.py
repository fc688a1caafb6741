"""Persona and step prompts as text templates with named slots."""
