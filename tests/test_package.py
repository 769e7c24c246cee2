"""The package's public names."""

from __future__ import annotations

import llmring_usage


class TestPublicNames:
    """__all__ lists exactly the public names the package exposes, sorted."""

    def test_all_matches_public_attributes(self):
        """Every name in __all__ exists, and every public non-module attribute is in __all__."""
        import types

        public = {
            name
            for name, value in vars(llmring_usage).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        assert set(llmring_usage.__all__) == public
        assert list(llmring_usage.__all__) == sorted(llmring_usage.__all__)

    def test_issue_api_names_are_public(self):
        """The names the issue promises are importable from the package."""
        for name in ("with_usage_logging", "log_usage", "LLMRingExtended", "UsageRecord"):
            assert name in llmring_usage.__all__

    def test_cli_is_not_imported_by_the_package(self):
        """`import llmring_usage` does not import the command line module (click, rich stay lazy)."""
        import subprocess
        import sys

        probe = "import sys, llmring_usage; print('llmring_usage.cli' in sys.modules)"
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        )
        assert result.stdout.strip() == "False"
