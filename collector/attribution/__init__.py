"""Attribution: from observations of many vantages to outages with a cause and evidence.

Modules: ``model`` (topology, signals, incidents), ``topology`` (built from the
inventory), ``signals`` (read from the store), ``rules`` (the decision table),
``engine`` (slots -> verdicts -> root incidents). docs/attribution.md states the rules.
"""
