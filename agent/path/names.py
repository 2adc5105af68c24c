"""Reverse names for hop addresses, looked up in the background and never waited for.

A resolver that does not answer must not stall the table: each address gets
one lookup in a daemon thread, and the table shows the name once it is
there. Daemon threads, because a lookup stuck in the resolver's own retries
must not hold up the command's exit either.
"""

from __future__ import annotations

import socket
import threading
import time


class ReverseNames:
    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled
        self._names: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def lookup(self, address: str) -> None:
        """Start resolving ``address`` unless that is already done or under way."""
        if not self._enabled:
            return
        with self._lock:
            if address in self._names:
                return
            self._names[address] = None
        thread = threading.Thread(target=self._resolve, args=(address,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def wait(self, timeout: float) -> None:
        """Give lookups still under way at most ``timeout`` seconds in all (final report)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def get(self, address: str | None) -> str | None:
        if address is None:
            return None
        with self._lock:
            return self._names.get(address)

    def _resolve(self, address: str) -> None:
        try:
            name = socket.gethostbyaddr(address)[0]
        except (OSError, UnicodeError):
            return
        with self._lock:
            self._names[address] = name
