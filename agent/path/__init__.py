"""Path discovery for network engineers: ``slawatch-agent path``.

``hops`` holds the pure judgements (per-hop statistics, rate limiting versus
path loss, border and egress hops, path changes); ``trace`` builds and matches
the TTL-limited probes; ``session`` runs the rounds; ``render`` prints them.
Nothing here is imported by the daemon: scapy, which ``trace`` needs to craft
packets, is imported only when a trace runs (it costs about 35 MB).
"""
