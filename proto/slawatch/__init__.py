"""The slawatch wire contract (generated code lives in ``slawatch.v1``)."""
