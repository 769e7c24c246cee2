"""Every script in examples/ runs as it is (no key, no server) and leaves its records in the journal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmring_usage import Journal

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# script -> (origin its records carry, how many calls it makes)
EXPECTED = {
    "wrap_ring.py": ("example-wrap-ring", 3),
    "decorator.py": ("example-decorator", 2),
    "extended.py": ("example-extended", 3),
    "background_mode.py": ("example-background", 10),
}


def fresh_env(home: Path) -> dict[str, str]:
    """A new HOME with no provider keys and no llmring settings, as on a fresh machine."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LLMRING_", "XDG_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_"))
    }
    env["HOME"] = str(home)
    return env


class TestExamples:
    """The examples are runnable documentation."""

    def test_every_example_is_covered(self) -> None:
        """Each script in examples/ (helpers aside) has an expectation here."""
        scripts = {path.name for path in EXAMPLES.glob("*.py") if not path.name.startswith("_")}
        assert scripts == set(EXPECTED)

    @pytest.mark.parametrize("script", sorted(EXPECTED))
    def test_runs_and_journals_its_records(self, script: str, tmp_path: Path) -> None:
        """The script exits 0 on a fresh HOME and its calls are records in the default journal."""
        origin, calls = EXPECTED[script]
        home = tmp_path / "example-home"
        home.mkdir()
        completed = subprocess.run(
            [sys.executable, str(EXAMPLES / script)],
            env=fresh_env(home),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = completed.stdout + completed.stderr
        assert completed.returncode == 0, output
        assert "Traceback" not in output
        assert "simulated" in completed.stdout
        journal = Journal(home / ".local" / "share" / "llmring-usage" / "usage.db")
        try:
            rows = journal.query("SELECT origin, cost, input_tokens, output_tokens FROM records")
        finally:
            journal.close()
        assert len(rows) == calls, output
        assert {row["origin"] for row in rows} == {origin}
        assert all(row["cost"] is not None and row["cost"] > 0 for row in rows)
        assert not list(home.glob(".cache/llmring/registry/*.json"))
