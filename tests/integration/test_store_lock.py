"""One running collector per store: a second one on the same --db is refused, naming the
db and the PID holding it, while the first runs on; read-only commands and the commands
that add to the store keep working beside it; once the first stops, another may start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from collector.errors import InventoryError, StoreError
from collector.server import CollectorServer, CollectorSettings
from collector.store.lock import lock_path
from collector.store.sqlite import Store
from tests.conftest import COLLECTOR_CMD, free_port
from tests.integration.uplink_helpers import (
    agent_for,
    collector_on_loopback,
    observation,
    until,
    uplink,
)


def _settings_like(settings: CollectorSettings, **changes: object) -> CollectorSettings:
    """Another collector on the same store, on ports of its own."""
    fields = {"listen": f"127.0.0.1:{free_port()}", "metrics_port": free_port(), **changes}
    return CollectorSettings(db_path=settings.db_path, **fields)  # type: ignore[arg-type]


def test_a_second_collector_on_the_same_store_is_refused_while_the_first_runs_on(
    tmp_path: Path,
) -> None:
    settings = collector_on_loopback(tmp_path)
    db = settings.db_path
    config = agent_for(settings, "locked", flush_interval=0.05, batch_max=5)

    async def scenario() -> None:
        first = CollectorServer(settings)
        await first.start()
        link, buffer = uplink(config, batch_size=5)
        task = asyncio.create_task(link.run())
        try:
            with pytest.raises(StoreError) as info:
                CollectorServer(_settings_like(settings))
            message = str(info.value)
            assert f"store {db} is in use by another collector" in message
            assert f"PID {os.getpid()}" in message
            assert str(lock_path(db)) in message
            # The first one is unharmed: it still stores and acks.
            for i in range(5):
                buffer.put(observation(i))
            await until(lambda: link.stats.observations_acked == 5, 10)
            # Writers beside a running collector (import, maintenance) take no lock.
            Store(db).close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await first.stop(grace=0.2)
        # Stopped, it gives the store up.
        again = CollectorServer(_settings_like(settings))
        await again.start()
        await again.stop(grace=0.2)

    asyncio.run(scenario())


def test_a_collector_refused_at_construction_gives_the_store_up(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.yaml"
    bad.write_text("sites: [")
    settings = collector_on_loopback(tmp_path, inventory=bad)

    async def scenario() -> None:
        with pytest.raises(InventoryError):
            CollectorServer(settings)
        CollectorServer(_settings_like(settings)).store.close()

    asyncio.run(scenario())


def _metrics_up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
            return True
    except OSError:
        return False


def _run_argv(db: Path, *extra: str) -> list[str]:
    return [COLLECTOR_CMD, "--log-level", "warning", "run", "--insecure",
            "--listen", f"127.0.0.1:{free_port()}", "--db", str(db), *extra]  # fmt: skip


def test_a_second_collector_process_exits_naming_the_store_and_the_first_ones_pid(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "collector.db"
    metrics_port = free_port()
    first = subprocess.Popen(
        _run_argv(db, "--metrics-listen", f"127.0.0.1:{metrics_port}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _metrics_up(metrics_port):
            assert first.poll() is None, first.communicate()[1]
            assert time.monotonic() < deadline, "the first collector did not come up"
            time.sleep(0.2)
        assert lock_path(db).read_text().strip() == str(first.pid)

        second = subprocess.run(
            _run_argv(db, "--metrics-listen", f"127.0.0.1:{free_port()}", "--duration", "5"),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 2, second.stderr
        assert f"store {db} is in use by another collector (PID {first.pid}" in second.stderr
        assert first.poll() is None  # the first runs on
        assert _metrics_up(metrics_port)

        # Read-only commands work while it runs.
        for argv in (["summary"], ["incidents", "--since", "24h"]):
            shown = subprocess.run([COLLECTOR_CMD, *argv, "--db", str(db)],
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
            assert shown.returncode == 0, shown.stderr
    finally:
        first.terminate()
        _out, err = first.communicate(timeout=30)
    assert first.returncode == 0, err

    third = subprocess.run(
        _run_argv(db, "--metrics-listen", f"127.0.0.1:{free_port()}", "--duration", "0.5"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert third.returncode == 0, third.stderr
