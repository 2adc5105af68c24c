"""slawatch agent: runs checks on a node and streams observations to the collector."""

__version__ = "0.1.0"
