"""Configuration from the collector: the inventory, and each agent's pushed check list.

The collector loads its inventory at start (an invalid file stops it there).
It reloads on SIGHUP and when the file changes (polled: no inotify
dependency, and it works on any filesystem). A reload that fails validation
is logged and changes nothing: agents keep what they run. After a good
reload, every connected agent whose check list changed gets the new one.

Every stream subscribes for its agent; the service sends the current push
right after the hello ack (unless the agent already runs that version) and
then whatever arrives on the subscription. An agent the inventory does not
list gets an empty list: the collector owns what agents check for it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from pathlib import Path

from collector.errors import InventoryError
from collector.inventory import Inventory, load_inventory
from slawatch.v1 import uplink_pb2 as up

log = logging.getLogger(__name__)

# How often the inventory file's modification is looked for.
WATCH_INTERVAL = 1.0
# What an agent the inventory does not list gets: no checks.
_EMPTY_VERSION = "empty"
# What ``on_reload`` is told after a reload: every value, so that the metrics can give
# each its series before the first reload.
RELOAD_OK = "ok"
RELOAD_INVALID = "invalid"
RELOAD_RESULTS = (RELOAD_OK, RELOAD_INVALID)


class ConfigDistributor:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.inventory: Inventory = load_inventory(path)  # InventoryError stops the start
        self._stamp = self._file_stamp()
        self._streams: collections.defaultdict[str, set[asyncio.Queue[up.ConfigPush]]] = (
            collections.defaultdict(set)
        )
        # Told one of RELOAD_RESULTS after each reload (the metrics count them).
        self.on_reload: Callable[[str], None] = lambda _result: None
        # Given each inventory a reload accepted (the server stores its maintenance windows).
        self.on_loaded: Callable[[Inventory], None] = lambda _inventory: None

    def push_for(self, agent_id: str) -> up.ConfigPush:
        assigned = self.inventory.agents.get(agent_id)
        if assigned is None:
            return up.ConfigPush(version=_EMPTY_VERSION, checks_yaml="[]\n")
        return up.ConfigPush(version=assigned.version, checks_yaml=assigned.checks_yaml)

    def subscribe(self, agent_id: str) -> asyncio.Queue[up.ConfigPush]:
        queue: asyncio.Queue[up.ConfigPush] = asyncio.Queue()
        self._streams[agent_id].add(queue)
        return queue

    def unsubscribe(self, agent_id: str, queue: asyncio.Queue[up.ConfigPush]) -> None:
        streams = self._streams.get(agent_id)
        if streams is not None:
            streams.discard(queue)
            if not streams:
                del self._streams[agent_id]

    def reload(self) -> bool:
        """Load the file again; push changed check lists. False if it was invalid."""
        self._stamp = self._file_stamp()
        try:
            fresh = load_inventory(self.path)
        except InventoryError as exc:
            self.on_reload(RELOAD_INVALID)
            log.error("inventory reload refused, agents keep their checks: %s", exc)
            return False
        before = {agent: self.push_for(agent).version for agent in self._streams}
        self.inventory = fresh
        self.on_reload(RELOAD_OK)
        self.on_loaded(fresh)
        changed = [a for a, version in before.items() if self.push_for(a).version != version]
        for agent_id in changed:
            for queue in self._streams[agent_id]:
                queue.put_nowait(self.push_for(agent_id))
        log.info("inventory %s reloaded: %d agents, %d connected ones get new checks",
                 self.path, len(fresh.agents), len(changed))  # fmt: skip
        return True

    async def watch(self) -> None:
        """Reload whenever the file changes, until cancelled."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self._file_stamp() != self._stamp:
                self.reload()

    def _file_stamp(self) -> tuple[int, int, int]:
        try:
            stat = self.path.stat()
        except OSError:
            return (0, 0, 0)
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
