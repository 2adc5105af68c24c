"""One running collector per store: an exclusive lock on ``<db>.lock``, beside the db.

Two collectors on one SQLite file would both write: both would ingest, run
attribution and sync the inventory's windows, each believing it owns the
store. So the running collector (``slawatch-collector run``, through
``Store(path, exclusive=True)``) holds an exclusive ``flock(2)`` on
``<db>.lock`` for its whole life, its PID written in the file; a second one is
refused, naming the db and that PID. The kernel drops the lock when its
process ends, however it ends, so a killed collector leaves no stale lock (the
file stays, and the next collector takes it over).

Only the running collector takes it: read-only commands (summary, report,
incidents ...) and the commands that add to the store beside a running
collector (import, maintenance, override) open the store without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from collector.errors import StoreError


def lock_path(db_path: Path) -> Path:
    """The lock file of the store at ``db_path``: ``<db>.lock`` beside it."""
    return db_path.with_name(db_path.name + ".lock")


class StoreLock:
    """The exclusive lock of one store, held until ``release`` (or the process ends)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: Path) -> StoreLock:
        """Take the store's lock, or raise StoreError naming the db and the holder."""
        path = lock_path(db_path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot open the lock file {path} of store {db_path}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreError(
                f"store {db_path} is in use by another collector ({holder}, holding "
                f"{path}): stop it first, or give this one another --db"
            ) from None
        except OSError as exc:  # e.g. a filesystem without locks
            os.close(fd)
            raise StoreError(f"cannot lock {path} for store {db_path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise StoreError(f"cannot write the lock file {path}: {exc.strerror}") from None
        return cls(path, fd)

    def release(self) -> None:
        """Give the store up (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no PID left behind for whoever looks next
        os.close(fd)  # closing drops the lock


def _holder(fd: int) -> str:
    """Who holds the lock, as its lock file says: ``PID 1234`` (or that it is unknown)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return f"PID {text}" if text.isdigit() else "PID unknown"
