"""Test infrastructure: the real llmring-server, fault tools."""
