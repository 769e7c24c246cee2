"""Shared by the examples: a local stand-in for OpenAI and Anthropic when no provider key is set.

With OPENAI_API_KEY in the environment the examples call the real provider and llmring's public
registry. Without it, `offline_llm()` starts llmring_usage.testing.FakeProvider on 127.0.0.1,
points llmring's OpenAI and Anthropic SDKs at it, and writes an offline model registry and a
lockfile (aliases `fast` and `smart`) to a temporary directory. The answers are canned; the
token counts and prices are realistic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmring_usage.testing import FakeProvider, write_lockfile, write_registry

# llmring warns that a ring without a server does not log usage: llmring-usage does.
logging.getLogger("llmring").setLevel(logging.ERROR)


@contextlib.contextmanager
def offline_llm() -> Iterator[dict[str, Any]]:
    """Yield LLMRing keyword arguments (registry_url, lockfile_path) that work here."""
    with tempfile.TemporaryDirectory(prefix="llmring-usage-example-") as tmp:
        lockfile = write_lockfile(
            Path(tmp) / "llmring.lock",
            {"fast": "openai:gpt-4o-mini", "smart": "openai:gpt-4o"},
        )
        if os.environ.get("OPENAI_API_KEY"):
            print("Using your OPENAI_API_KEY: these are real calls.")
            yield {"registry_url": None, "lockfile_path": str(lockfile)}
            return
        from llmring.registry import RegistryClient

        saved_cache = RegistryClient.CACHE_DIR
        # llmring caches registries per provider whatever their URL, and deletes that cache when
        # a ring closes: keep the offline registry out of the user's own cache.
        RegistryClient.CACHE_DIR = Path(tmp) / "registry-cache"
        with FakeProvider() as provider:
            saved_env = {name: os.environ.get(name) for name in provider.env()}
            os.environ.update(provider.env())
            print(f"No OPENAI_API_KEY: answers are simulated by a local endpoint at {provider.url}.")
            try:
                yield {"registry_url": write_registry(Path(tmp) / "registry"), "lockfile_path": str(lockfile)}
            finally:
                RegistryClient.CACHE_DIR = saved_cache
                for name, value in saved_env.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
