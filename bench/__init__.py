"""Benchmarks of llmring-usage against the real llmring-server: run ``python -m bench``.

What is measured, against what, and the targets: ``bench/_measure.py`` and ``docs/benchmarks.md``.
"""
