"""Checks pushed by the collector: validate, apply, cache, answer.

The collector's inventory gives each agent a check list (``ConfigPush``).
The agent validates it with the same rules as its own file; a list with any
problem is rejected as a whole, with every problem in the reason, and the
checks running before keep running. An accepted list replaces the previous
pushed list: unchanged checks keep their rhythm, removed ones stop, new ones
start within one interval. Local checks (the agent's own YAML) are never
touched, and a pushed check may not reuse a local check's id.

The last accepted list is cached in the spool folder, so after a restart the
agent probes with it even while the collector is unreachable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from agent import yaml_events
from agent.config import CheckConfig, checks_from_data
from agent.errors import AgentError, ConfigError
from agent.probes import Probe
from slawatch.v1 import uplink_pb2 as up

log = logging.getLogger(__name__)

CACHE_NAME = "pushed-checks.yaml"
MAX_VERSION = 64


class PushedChecks:
    def __init__(
        self,
        cache_dir: Path,
        local_ids: set[str],
        build: Callable[[CheckConfig], Probe],
        add: Callable[[Sequence[Probe]], None],
        retire: Callable[[set[str]], None],
    ) -> None:
        self._cache = cache_dir / CACHE_NAME
        self._local_ids = local_ids
        self._build = build
        self._add = add
        self._retire = retire
        self.version = ""
        self.checks: dict[str, CheckConfig] = {}

    def load_cache(self) -> None:
        """Start with the last accepted list, if there is one that is still valid."""
        try:
            cached = yaml_events.load(self._cache.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            log.error("ignoring cached pushed checks %s: %s", self._cache, exc)
            return
        if not isinstance(cached, dict) or not isinstance(cached.get("version"), str):
            log.error("ignoring cached pushed checks %s: not a version and checks", self._cache)
            return
        status = self._apply(cached["version"], cached.get("checks"), save=False)
        if status.accepted:
            log.info("running %d cached pushed checks, version %s", len(self.checks),
                     self.version)  # fmt: skip
        else:
            log.error("ignoring cached pushed checks %s: %s", self._cache, status.reason)

    def take(self, push: up.ConfigPush) -> up.ConfigStatus:
        """Validate and apply one push; never raises."""
        if push.version == self.version and push.version:
            return up.ConfigStatus(version=push.version, accepted=True)
        try:
            data = yaml_events.load(push.checks_yaml) if push.checks_yaml.strip() else []
        except Exception as exc:  # YAMLError, and ValueError for `!!int abc`
            return _rejected(push.version, f"checks_yaml is not valid YAML: {exc}")
        return self._apply(push.version, data, save=True)

    def _apply(self, version: str, data: object, save: bool) -> up.ConfigStatus:
        if not version or len(version) > MAX_VERSION:
            return _rejected(version, f"version must be 1-{MAX_VERSION} characters")
        try:
            checks = checks_from_data(data, "pushed checks")
            self._refuse_local_ids(checks)
            changed = [c for c in checks if self.checks.get(c.id) != c]
            probes = [self._build(check) for check in changed]
        except (AgentError, ValueError, TypeError) as exc:
            log.error("pushed checks version %s rejected: %s", version, exc)
            return _rejected(version, str(exc))
        wanted = {c.id for c in checks}
        replaced = {c.id for c in changed if c.id in self.checks}
        self._retire(replaced | (set(self.checks) - wanted))
        self._add(probes)
        self.checks = {c.id: c for c in checks}
        self.version = version
        if save:
            self._save(version, data)
        log.info("pushed checks version %s: %d checks (%d new or changed)", version,
                 len(checks), len(changed))  # fmt: skip
        return up.ConfigStatus(version=version, accepted=True)

    def _refuse_local_ids(self, checks: Sequence[CheckConfig]) -> None:
        clashes = sorted(c.id for c in checks if c.id in self._local_ids)
        if clashes:
            raise ConfigError(
                "pushed checks reuse ids of this agent's own checks: " + ", ".join(clashes)
            )

    def _save(self, version: str, data: object) -> None:
        temporary = self._cache.with_suffix(".tmp")
        try:
            with temporary.open("w", encoding="utf-8") as file:
                yaml.safe_dump({"version": version, "checks": data}, file, sort_keys=False)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self._cache)
        except OSError as exc:
            # Applied anyway: probing matters more than the cache.
            log.error("cannot cache pushed checks in %s: %s", self._cache, exc.strerror)


def _rejected(version: str, reason: str) -> up.ConfigStatus:
    return up.ConfigStatus(version=version, accepted=False, reason=reason[:4000])
