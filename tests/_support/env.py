"""Environment variables that must not leak into tests or benchmarks from the outside."""

from __future__ import annotations

FOREIGN_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_AUTH_TOKEN",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_API_KEY",
)
"""Provider keys and base URLs: a test or benchmark sets its own (the FakeProvider's) or none."""
