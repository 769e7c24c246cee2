"""Delivery of usage records: the journal, the exporter to llmring-server and the logger that drives them."""
