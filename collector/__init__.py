"""slawatch collector: ingest -> store -> attribution -> SLA -> exporters."""

__version__ = "0.1.0"
