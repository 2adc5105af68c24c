"""Shared fixtures: the network lab, paths to the installed commands, and helpers."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.netlab import Lab, lab_unavailable_reason, remove_stale_namespaces

BIN = Path(sys.executable).parent
AGENT_CMD = str(BIN / "slawatch-agent")
COLLECTOR_CMD = str(BIN / "slawatch-collector")

_lab_reason: str | None = None
_lab_checked = False


def _lab_skip_reason() -> str | None:
    global _lab_checked, _lab_reason
    if not _lab_checked:
        _lab_reason = lab_unavailable_reason()
        _lab_checked = True
        if _lab_reason is None:
            remove_stale_namespaces()
    return _lab_reason


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs what this machine lacks; in CI (SLAWATCH_REQUIRE_LAB=1)
    fail instead, so that a missing lab can never pass for a green run."""
    if os.environ.get("SLAWATCH_REQUIRE_LAB") == "1":
        pytest.fail(f"required here, but: {reason}")
    pytest.skip(reason)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh network lab, torn down (processes and namespaces) even if the test fails."""
    reason = _lab_skip_reason()
    if reason is not None:
        skip_or_fail(reason)
    the_lab = Lab()
    try:
        yield the_lab
    finally:
        the_lab.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
