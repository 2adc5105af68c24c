"""Runs the collector: the gRPC uplink and health services, the store, and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from collector.attribution.runner import DEFAULT_INTERVAL, DEFAULT_LOOKBACK_NS, AttributionRunner
from collector.attribution.topology import item_place, topology_from_inventory
from collector.errors import ConfigError, StoreError
from collector.exporters.metrics import CollectorMetrics
from collector.ingest.config_push import ConfigDistributor
from collector.ingest.revocation import RevocationList
from collector.ingest.service import UplinkService
from collector.ingest.validate import Limits
from collector.inventory import Inventory
from collector.pki import ca_paths, collector_paths
from collector.store.places import sync_item_places
from collector.store.sqlite import Store
from collector.store.windows import InventorySync, sync_inventory_windows
from slawatch.v1 import uplink_pb2_grpc as up_grpc

log = logging.getLogger(__name__)

UPLINK_SERVICE = "slawatch.v1.Uplink"
MAX_MESSAGE_BYTES = 4 << 20
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # Agents ping every 30 s; accept that, and pings on idle connections.
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # gRPC sets SO_REUSEPORT by default: a second collector on the same port
    # would silently take half the agents. Fail to bind instead.
    ("grpc.so_reuseport", 0),
    # An agent needs one stream per connection; more from one peer is a flood.
    ("grpc.max_concurrent_streams", 16),
]


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    listen: str = "127.0.0.1:4317"
    db_path: Path = Path("slawatch-data/collector.db")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9108
    limits: Limits = field(default_factory=Limits)
    # Checks exported as per-check series: in all, and per agent (docs/metrics.md).
    max_check_series: int = 5_000
    max_check_series_per_agent: int = 1_000
    # The PKI folder (`pki init`): mTLS, agents identified by their certificate.
    # None means plaintext without identities, only when asked for explicitly.
    tls_dir: Path | None = None
    max_streams: int = 10_000
    # The inventory file: agents get their checks from it (None: no pushes, and no
    # attribution, which needs its topology).
    inventory: Path | None = None
    # Attribution runs: how often, and how far back each one looks.
    attribution_interval: float = DEFAULT_INTERVAL
    attribution_lookback_ns: int = DEFAULT_LOOKBACK_NS


def server_credentials(tls_dir: Path) -> grpc.ServerCredentials:
    """The collector's certificate, and client certificates required from the CA."""
    try:
        ca = ca_paths(tls_dir).cert_path.read_bytes()
        own = collector_paths(tls_dir)
        pair = (own.key_path.read_bytes(), own.cert_path.read_bytes())
    except OSError as exc:
        raise ConfigError(
            f"--tls-dir {tls_dir}: {exc.strerror}: {exc.filename} (make it with `pki init`)"
        ) from None
    return grpc.ssl_server_credentials([pair], root_certificates=ca, require_client_auth=True)


class CollectorServer:
    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.metrics = CollectorMetrics(
            max_check_series=settings.max_check_series,
            max_check_series_per_agent=settings.max_check_series_per_agent,
        )
        # The running collector's store is locked: a second collector on it is refused.
        self.store = Store(settings.db_path, exclusive=True)
        self.store.commit_seconds = self.metrics.commit_seconds.observe
        self.metrics.watch_sla(settings.db_path)
        self._grpc = grpc.aio.server(options=SERVER_OPTIONS)
        self._health = health_async.HealthServicer()
        self._http: object | None = None
        self.grpc_port = 0
        # Loaded now: an invalid inventory stops the collector before it listens.
        try:
            self.distributor = (
                ConfigDistributor(settings.inventory) if settings.inventory is not None else None
            )
        except BaseException:
            self.store.close()  # and its lock: this collector never ran
            raise
        self._watching: asyncio.Task[None] | None = None
        self.attribution: AttributionRunner | None = None
        self._attributing: asyncio.Task[None] | None = None
        self._syncing: set[asyncio.Task[None]] = set()
        # With --tls-dir: its crl.pem, if any (gRPC itself cannot check a CRL).
        self.revocations: RevocationList | None = None
        self._watching_crl: asyncio.Task[None] | None = None

    async def start(self) -> None:
        credentials = None
        if self.settings.tls_dir is not None:
            credentials = server_credentials(self.settings.tls_dir)
            # An unreadable or foreign CRL stops the start, as a bad inventory does.
            self.revocations = RevocationList(self.settings.tls_dir)
        service = UplinkService(
            self.store, self.metrics, self.settings.limits,
            require_identity=self.settings.tls_dir is not None,
            max_streams=self.settings.max_streams, distributor=self.distributor,
            revocations=self.revocations,
        )  # fmt: skip
        up_grpc.add_UplinkServicer_to_server(service, self._grpc)  # type: ignore[no-untyped-call]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        try:
            if credentials is None:
                self.grpc_port = self._grpc.add_insecure_port(self.settings.listen)
            else:
                self.grpc_port = self._grpc.add_secure_port(self.settings.listen, credentials)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {self.settings.listen}: {exc}") from None
        try:
            httpd, _thread = start_http_server(
                self.settings.metrics_port, self.settings.metrics_host, self.metrics.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {self.settings.metrics_host}:"
                f"{self.settings.metrics_port}: {exc.strerror}"
            ) from None
        self._http = httpd
        if self.distributor is not None:
            self.metrics.watch_inventory(self.distributor)
            await self._store_windows(self.distributor.inventory)
            self.distributor.on_loaded = self._store_windows_soon
            self._watching = asyncio.create_task(self.distributor.watch())
            self._start_attribution(self.distributor)
        if self.revocations is not None:
            self._watching_crl = asyncio.create_task(self.revocations.run())
        await self._grpc.start()
        for name in ("", UPLINK_SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "collector listening on %s, metrics on http://%s:%d/metrics",
            self.settings.listen,
            self.settings.metrics_host,
            self.settings.metrics_port,
        )

    def _start_attribution(self, distributor: ConfigDistributor) -> None:
        # The inventory as it is at each run: a reload changes the topology too.
        self.attribution = AttributionRunner(
            self.store,
            lambda: distributor.inventory,
            interval=self.settings.attribution_interval,
            lookback_ns=self.settings.attribution_lookback_ns,
        )
        self.metrics.watch_attribution(self.attribution)
        self._attributing = asyncio.create_task(self.attribution.run())

    async def _store_windows(self, inventory: Inventory) -> None:
        """Make the store's inventory maintenance windows, and the places of its service
        items, the inventory's. A failure is logged: the agents' checks matter more than
        the windows, and the next reload tries again."""
        windows = inventory.maintenance
        topology = topology_from_inventory(inventory)
        places = [item_place(topology, item_id) for item_id in topology.items]

        def sync(conn: sqlite3.Connection) -> InventorySync:
            sync_item_places(conn, places)
            return sync_inventory_windows(conn, windows, time.time_ns())

        try:
            done = await self.store.write(sync)
        except StoreError as exc:
            log.error("inventory maintenance windows not stored: %s", exc)
            return
        if done.changed:
            log.info("inventory maintenance windows: %d added, %d updated, %d cancelled",
                     done.added, done.updated, done.cancelled)  # fmt: skip

    def _store_windows_soon(self, inventory: Inventory) -> None:
        # A reload runs in the event loop (SIGHUP, the file watch); the write waits its turn.
        task = asyncio.get_running_loop().create_task(self._store_windows(inventory))
        self._syncing.add(task)
        task.add_done_callback(self._syncing.discard)

    def reload_inventory(self) -> None:
        """SIGHUP: read the inventory and the CRL again (a bad file is logged and changes
        nothing; a CRL that revokes more ends those certificates' open streams)."""
        if self.distributor is not None:
            self.distributor.reload()
        if self.revocations is not None:
            self.revocations.reload()

    async def stop(self, grace: float = 5.0) -> None:
        if self._watching is not None:
            self._watching.cancel()
        if self._watching_crl is not None:
            self._watching_crl.cancel()
        if self._attributing is not None:
            self._attributing.cancel()
            # Before the store closes: a save it already queued is still committed.
            with contextlib.suppress(asyncio.CancelledError):
                await self._attributing
        if self._syncing:  # a reload's windows are written before the store closes
            await asyncio.wait(self._syncing, timeout=grace)
        await self._health.enter_graceful_shutdown()
        await self._grpc.stop(grace)
        if self._http is not None:
            self._http.shutdown()  # type: ignore[attr-defined]
            self._http.server_close()  # type: ignore[attr-defined]
        self.store.close()
