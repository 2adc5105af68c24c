"""The network lab: test hosts as Linux network namespaces (see netlab.py)."""
