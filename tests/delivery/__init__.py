"""Unit tests of the delivery layer: journal, exporter, logger."""
