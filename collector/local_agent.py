"""Starts a local ``slawatch-agent`` beside the collector, as a separate process.

Used by ``slawatch-collector run --local-agent CONFIG`` so that one command
runs the whole system on one machine. The agent is a child process, never
imported: agent and collector share only the wire contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
from pathlib import Path

from collector.errors import ConfigError

log = logging.getLogger(__name__)


def agent_executable() -> str:
    beside = Path(sys.executable).parent / "slawatch-agent"
    if beside.exists():
        return str(beside)
    found = shutil.which("slawatch-agent")
    if found is None:
        raise ConfigError("--local-agent needs the slawatch-agent command; install slawatch")
    return found


async def start_local_agent(
    config: Path, collector_address: str, spool_dir: Path
) -> asyncio.subprocess.Process:
    """The agent's spool goes beside the collector's store, whatever the agent's config says."""
    process = await asyncio.create_subprocess_exec(
        agent_executable(), "--log-level", "warning", "run",
        "--config", str(config), "--collector", collector_address,
        "--spool-dir", str(spool_dir),
        stdin=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    log.info("local agent started (pid %d) with %s", process.pid, config)
    return process


async def stop_local_agent(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """Ask the agent to stop (it flushes its last batches first), then make sure it did."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(timeout):
            await process.wait()
    except TimeoutError:
        log.warning("local agent did not stop in %gs; killing it", timeout)
        process.kill()
        await process.wait()
