"""The package's public surface: `__all__` is exactly what it exposes, sorted."""

from __future__ import annotations

import inspect

import llmring_usage


class TestPublicApi:
    def test_all_is_sorted_and_complete(self) -> None:
        """`__all__` is sorted and names every public class or function the package holds."""
        exposed = {
            name
            for name, value in vars(llmring_usage).items()
            if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value))
        }
        assert llmring_usage.__all__ == sorted(llmring_usage.__all__)
        assert set(llmring_usage.__all__) == exposed

    def test_issue_api_names_are_importable(self) -> None:
        """The names the issue promises import from the package root."""
        from llmring_usage import LLMRingExtended, UsageRecord, log_usage, with_usage_logging

        assert callable(with_usage_logging) and callable(log_usage)
        assert "input_tokens" in UsageRecord.model_fields
        assert LLMRingExtended.__mro__[1].__name__ == "LLMRingSession"

    def test_cli_is_not_imported_by_the_package(self) -> None:
        """`import llmring_usage` does not import the command line module."""
        import subprocess
        import sys

        probe = "import sys, llmring_usage; print('llmring_usage.cli' in sys.modules)"
        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
        )
        assert result.stdout.strip() == "False"
