"""Prometheus metrics of the collector: probe results per check, agents, and ingest.

Naming follows Prometheus conventions: base units (seconds, bytes, ratios),
``_total`` for counters, a ``slawatch_`` prefix. Label cardinality is bounded:
per-check series carry agent, check, kind and target (plus, per kind, labels
with a bounded set of values: a host check's mounts and interfaces, an
egress-loss verdict, the ttl and address of each hop of a path check's last
trace only), and the distinct checks exported are bounded twice: at most
``max_check_series_per_agent`` per agent, so that one agent's flood of check
ids cannot crowd out the others, and at most ``max_check_series`` in all, for
Prometheus's sake. Observations of a check refused by either still get
stored, and are counted per agent and limit in
``slawatch_metrics_series_limited_total``; the first refusal of each agent by
each limit is logged.

The RTT histogram's buckets start at 25 us and double up to about 13 s, fine
enough to tell LAN round trips apart (smokeping_prober uses the same idea).

Counters that alerts take increase() of exist at 0 before their first event:
every label value known in advance from the start, an agent's from its first
stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from collector.ingest.config_push import RELOAD_RESULTS, ConfigDistributor
from collector.ingest.validate import RULES
from collector.store.coverage import DropLoss
from collector.store.sqlite import ERROR_CLASS_NAMES, KIND_NAMES, OUTCOME_NAMES
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up

if TYPE_CHECKING:
    from collector.exporters.attribution_metrics import AttributionSource

# A `_created` series per counter and histogram would double the per-check series
# for nothing Grafana uses; the store keeps the real history.
disable_created_metrics()  # type: ignore[no-untyped-call]

log = logging.getLogger(__name__)

RTT_BUCKETS = tuple(25e-6 * 2**k for k in range(20))
CHECK_LABELS = ("agent", "check", "kind", "target")
# The CHECK_LABELS values of one check.
CheckKey = tuple[str, str, str, str]

# A batch's ack latency: from 1 ms (validate and commit on a quiet collector) to 10 s
# (the store stalled), in 1-2.5-5 steps.
ACK_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Every `result` of slawatch_ingest_batches_total.
BATCH_ACCEPTED = "accepted"
BATCH_DUPLICATE = "duplicate"
BATCH_REJECTED = "rejected"
BATCH_RESULTS = (BATCH_ACCEPTED, BATCH_DUPLICATE, BATCH_REJECTED)


@dataclass(slots=True)
class _AgentState:
    # Streams open now: a reconnecting agent may have two for a while.
    open_streams: int = 0
    sessions: int = 0
    heartbeat: up.Heartbeat | None = None
    heartbeat_received: float = 0.0
    config_status: up.ConfigStatus | None = None
    # notAfter (Unix seconds) of the client certificate of its last stream (mTLS only).
    certificate_not_after: float | None = None


# The two limits on exported checks, as `limit` label values.
PER_AGENT = "per_agent"
TOTAL = "total"
LIMITS = (PER_AGENT, TOTAL)


@dataclass(slots=True)
class _SeriesBudget:
    """One agent's use of the per-check series budget."""

    # Distinct (check, kind, target) exported for the agent.
    checks: int = 0
    # Per limit that refused the agent a check: its counter child (made and logged on
    # the first refusal, so later refusals are one dict lookup and an increment).
    refused: dict[str, Counter] = field(default_factory=dict)


class _SeriesBudgetCollector(Collector):
    """How much of the per-check series budget each agent uses, and the limits."""

    def __init__(self, budgets: dict[str, _SeriesBudget], per_agent: int, total: int) -> None:
        self._budgets = budgets
        self._limits = ((PER_AGENT, per_agent), (TOTAL, total))

    def collect(self) -> Iterator[Metric]:
        used = GaugeMetricFamily(
            "slawatch_metrics_check_series",
            "Distinct checks (check, kind, target) exported for the agent.",
            labels=["agent"],
        )
        # A copy (atomic under the GIL): the event loop may add an agent meanwhile.
        for agent_id, budget in sorted(self._budgets.copy().items()):
            if budget.checks:
                used.add_metric([agent_id], budget.checks)
        limits = GaugeMetricFamily(
            "slawatch_metrics_check_series_limit",
            "Most distinct checks exported: per agent, and in all.",
            labels=["limit"],
        )
        for name, value in self._limits:
            limits.add_metric([name], value)
        yield from (used, limits)


class _AgentCollector(Collector):
    """Agent liveness and the host snapshot from each agent's last heartbeat."""

    def __init__(self, agents: dict[str, _AgentState]) -> None:
        self._agents = agents

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "slawatch_agent_connected",
            "1 while the agent has an open uplink stream.",
            labels=["agent"],
        )
        sessions = CounterMetricFamily(
            "slawatch_agent_sessions", "Uplink streams the agent has opened.", labels=["agent"]
        )
        last = GaugeMetricFamily(
            "slawatch_agent_last_heartbeat_timestamp_seconds",
            "When the agent's last heartbeat arrived.",
            labels=["agent"],
        )
        rss = GaugeMetricFamily(
            "slawatch_agent_resident_memory_bytes", "The agent process's RSS.", labels=["agent"]
        )
        cpu = CounterMetricFamily(
            "slawatch_agent_cpu_seconds", "CPU time used by the agent process.", labels=["agent"]
        )
        skipped = CounterMetricFamily(
            "slawatch_agent_rounds_skipped",
            "Rounds skipped because the previous one overran.",
            labels=["agent"],
        )
        load = GaugeMetricFamily(
            "slawatch_node_load1", "Node 1-minute load average.", labels=["agent"]
        )
        memory = GaugeMetricFamily(
            "slawatch_node_memory_used_ratio", "Node memory in use.", labels=["agent"]
        )
        boot = GaugeMetricFamily(
            "slawatch_node_boot_time_seconds", "Node boot time.", labels=["agent"]
        )
        # One series per agent (its last answer), so versions cannot pile up series.
        config = GaugeMetricFamily(
            "slawatch_agent_config_info",
            "1, labelled with the last pushed config version the agent answered for.",
            labels=["agent", "version", "accepted"],
        )
        certificate = GaugeMetricFamily(
            "slawatch_agent_certificate_expiry_timestamp_seconds",
            "When the client certificate of the agent's last stream expires (notAfter).",
            labels=["agent"],
        )
        for agent_id, state in sorted(self._agents.items()):
            connected.add_metric([agent_id], 1.0 if state.open_streams else 0.0)
            sessions.add_metric([agent_id], state.sessions)
            if state.certificate_not_after is not None:
                certificate.add_metric([agent_id], state.certificate_not_after)
            status = state.config_status
            if status is not None:
                accepted = "true" if status.accepted else "false"
                config.add_metric([agent_id, status.version, accepted], 1.0)
            if state.heartbeat is None:
                continue
            host = state.heartbeat.host
            last.add_metric([agent_id], state.heartbeat_received)
            rss.add_metric([agent_id], host.agent_rss_bytes)
            cpu.add_metric([agent_id], host.agent_cpu_seconds)
            skipped.add_metric([agent_id], host.rounds_skipped)
            load.add_metric([agent_id], host.load1)
            memory.add_metric([agent_id], host.memory_used_ratio)
            boot.add_metric([agent_id], host.boot_time_unix)
        yield from (connected, sessions, certificate, config, last, rss, cpu, skipped, load,
                    memory, boot)  # fmt: skip


class _HostMetrics:
    """What the host check reports, per agent and check (and mount, interface, process)."""

    def __init__(self, r: CollectorRegistry) -> None:
        labels = ("agent", "check")
        self.ratios = {
            name: Gauge(f"slawatch_host_{name}", help_text, labels, registry=r)
            for name, help_text in (
                ("cpu_ratio", "Node CPU in use."),
                ("memory_used_ratio", "Node memory in use (1 - available/total)."),
                ("swap_used_ratio", "Node swap in use."),
                ("load1", "Node 1-minute load average."),
            )
        }
        self.disk = Gauge(
            "slawatch_host_disk_used_ratio",
            "Disk space in use, per mount.",
            (*labels, "mount"),
            registry=r,
        )
        self.inodes = Gauge(
            "slawatch_host_inodes_used_ratio",
            "Inodes in use, per mount.",
            (*labels, "mount"),
            registry=r,
        )
        self.bytes = Gauge(
            "slawatch_host_interface_bytes_per_second",
            "Interface throughput over the last interval.",
            (*labels, "interface", "direction"),
            registry=r,
        )
        self.packets = Gauge(
            "slawatch_host_interface_packets_per_second",
            "Interface packet rate over the last interval.",
            (*labels, "interface", "direction"),
            registry=r,
        )
        self.errors = Gauge(
            "slawatch_host_interface_errors",
            "Interface errors and drops since the node booted.",
            (*labels, "interface", "direction", "type"),
            registry=r,
        )
        self.processes = Gauge(
            "slawatch_host_process_running",
            "How many processes of a configured name run.",
            (*labels, "process"),
            registry=r,
        )
        self.findings = Gauge(
            "slawatch_host_findings",
            "Findings of the last round, by kind.",
            (*labels, "kind"),
            registry=r,
        )
        self.reboots = Counter(
            "slawatch_host_reboots_total", "Reboots the host check saw.", labels, registry=r
        )

    def observe(self, agent_id: str, check_id: str, host: pb.HostDetail) -> None:
        key = (agent_id, check_id)
        for name, gauge in self.ratios.items():
            gauge.labels(*key).set(getattr(host, name))
        for disk in host.disks:
            if not disk.error:
                self.disk.labels(*key, disk.mount).set(disk.used_ratio)
                self.inodes.labels(*key, disk.mount).set(disk.inodes_used_ratio)
        for nic in host.interfaces:
            for direction in ("rx", "tx"):
                self.bytes.labels(*key, nic.name, direction).set(
                    getattr(nic, f"{direction}_bytes_per_second")
                )
                self.packets.labels(*key, nic.name, direction).set(
                    getattr(nic, f"{direction}_packets_per_second")
                )
                for kind in ("errors", "dropped"):
                    self.errors.labels(*key, nic.name, direction, kind).set(
                        getattr(nic, f"{direction}_{kind}")
                    )
        for process in host.processes:
            self.processes.labels(*key, process.name).set(process.running)
        counts = {kind: 0 for kind in FINDING_NAMES.values()}
        for finding in host.findings:
            counts[FINDING_NAMES[finding.kind]] += 1
        for kind, count in counts.items():
            self.findings.labels(*key, kind).set(count)
        if counts["rebooted"]:
            self.reboots.labels(*key).inc()


class _PathMetrics:
    """The path check: each hop's loss in the check's last trace, and path changes.

    Hop series carry the hop's address, so each trace's series replace the previous
    trace's: a path that keeps changing (load balancing, a flapping route) cannot pile up
    address labels, and a check has at most one trace's hops exported."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.hop_loss = Gauge(
            "slawatch_path_hop_loss_ratio",
            "Loss of each hop in the check's last trace, (sent - received) / sent; "
            'address "" for a hop that never answered.',
            (*CHECK_LABELS, "ttl", "address"),
            registry=r,
        )
        self.changes = Counter(
            "slawatch_path_changes_total",
            "Traces whose path differed from the check's previous trace.",
            CHECK_LABELS,
            registry=r,
        )
        # Per check, the (ttl, address) label values of its last trace's hop series.
        self._hops: dict[CheckKey, set[tuple[str, str]]] = {}

    def observe(self, key: CheckKey, path: pb.PathDetail) -> None:
        changes = self.changes.labels(*key)  # at 0 from the first trace, for increase()
        if path.changed:
            changes.inc()
        losses = {
            (str(hop.ttl), hop.address): (hop.sent - hop.received) / hop.sent
            for hop in path.hops
            if hop.sent  # a TTL this trace did not probe has no loss to tell
        }
        for labels, loss in losses.items():
            self.hop_loss.labels(*key, *labels).set(loss)
        # By label values, not by `changed`: a hop answering now that did not before
        # is no change of path, but its address label is new all the same.
        for gone in self._hops.get(key, set()) - losses.keys():
            self.hop_loss.remove(*key, *gone)
        self._hops[key] = set(losses)


class _EgressLossMetrics:
    """The egress-loss check's last window: its verdict, the kube-state-metrics way (every
    verdict a series, 1 on the window's, 0 on the others: a change moves the 1 and no
    series comes or goes), and the 95% Wilson interval of the egress hop's loss."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.verdict = Gauge(
            "slawatch_egress_loss_verdict",
            "1 on the verdict of the check's last window (clear, undecided, excess, "
            "rate_limited), 0 on the others.",
            (*CHECK_LABELS, "verdict"),
            registry=r,
        )
        self.upper = Gauge(
            "slawatch_egress_loss_upper_ratio",
            "Upper 95% Wilson bound of the egress hop's loss in the check's last window.",
            CHECK_LABELS,
            registry=r,
        )
        self.lower = Gauge(
            "slawatch_egress_loss_lower_ratio",
            "Lower 95% Wilson bound of the egress hop's loss in the check's last window.",
            CHECK_LABELS,
            registry=r,
        )

    def observe(self, key: CheckKey, window: pb.EgressLossDetail) -> None:
        # A window without a verdict (unspecified) leaves every verdict at 0.
        for number, name in EGRESS_VERDICT_NAMES.items():
            self.verdict.labels(*key, name).set(1.0 if window.verdict == number else 0.0)
        self.upper.labels(*key).set(window.loss_upper_ratio)
        self.lower.labels(*key).set(window.loss_lower_ratio)


EGRESS_VERDICT_NAMES = {
    number: name.removeprefix("VERDICT_").lower()
    for name, number in pb.EgressLossDetail.Verdict.items()
    if number != pb.EgressLossDetail.VERDICT_UNSPECIFIED
}

FINDING_NAMES = {
    number: name.removeprefix("KIND_").lower()
    for name, number in pb.Finding.Kind.items()
    if number != pb.Finding.KIND_UNSPECIFIED
}


class CollectorMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        max_check_series: int = 5_000,
        max_check_series_per_agent: int = 1_000,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._max_check_series = max_check_series
        self._max_check_series_per_agent = max_check_series_per_agent
        if max_check_series_per_agent >= max_check_series:
            log.warning(
                "--max-check-series-per-agent %d is not below --max-check-series %d: "
                "one agent can take every exported check series",
                max_check_series_per_agent,
                max_check_series,
            )
        self._check_series: set[tuple[str, str, str, str]] = set()
        self._budgets: dict[str, _SeriesBudget] = {}
        self._agents: dict[str, _AgentState] = {}
        r = self.registry
        self.packets_sent = Counter(
            "slawatch_probe_packets_sent_total",
            "Probe packets sent (echoes, connects ...).",
            CHECK_LABELS,
            registry=r,
        )
        self.packets_received = Counter(
            "slawatch_probe_packets_received_total",
            "Probe packets answered.",
            CHECK_LABELS,
            registry=r,
        )
        self.rounds = Counter(
            "slawatch_probe_rounds_total",
            "Probe rounds by outcome.",
            (*CHECK_LABELS, "outcome"),
            registry=r,
        )
        self.round_errors = Counter(
            "slawatch_probe_round_errors_total",
            "Failed probe rounds by error class.",
            (*CHECK_LABELS, "error_class"),
            registry=r,
        )
        self.success = Gauge(
            "slawatch_probe_success",
            "1 if the check's last round succeeded, else 0.",
            CHECK_LABELS,
            registry=r,
        )
        self.last_round = Gauge(
            "slawatch_probe_last_round_timestamp_seconds",
            "Start of the check's last round.",
            CHECK_LABELS,
            registry=r,
        )
        self.rtt = Histogram(
            "slawatch_probe_rtt_seconds",
            "Round-trip time of each answered probe.",
            CHECK_LABELS,
            buckets=RTT_BUCKETS,
            registry=r,
        )
        self.duration = Gauge(
            "slawatch_probe_duration_seconds",
            "How long the check's last round took.",
            CHECK_LABELS,
            registry=r,
        )
        self.http_status = Gauge(
            "slawatch_probe_http_status_code",
            "HTTP status of the last round.",
            CHECK_LABELS,
            registry=r,
        )
        self.ttfb = Gauge(
            "slawatch_probe_http_time_to_first_byte_seconds",
            "From sending the request to the first byte of the response, last round.",
            CHECK_LABELS,
            registry=r,
        )
        self.tls_handshake = Gauge(
            "slawatch_probe_tls_handshake_seconds",
            "TLS handshake time of the last round.",
            CHECK_LABELS,
            registry=r,
        )
        self.cert_expiry = Gauge(
            "slawatch_probe_tls_cert_expiry_timestamp_seconds",
            "When the server certificate seen last expires (verified rounds only).",
            CHECK_LABELS,
            registry=r,
        )
        self._host = _HostMetrics(r)
        self._path = _PathMetrics(r)
        self._egress_loss = _EgressLossMetrics(r)
        self.batches = Counter(
            "slawatch_ingest_batches_total",
            "Observation batches received, by result.",
            ("result",),
            registry=r,
        )
        self.observations = Counter(
            "slawatch_ingest_observations_total", "Observations stored.", registry=r
        )
        self.ack_latency = Histogram(
            "slawatch_ingest_ack_latency_seconds",
            "From a batch's arrival to its ack being queued for sending (validate, store, commit).",
            buckets=ACK_LATENCY_BUCKETS,
            registry=r,
        )
        self.rejections = Counter(
            "slawatch_ingest_rejections_total",
            "Messages rejected, by the rule they broke.",
            ("rule",),
            registry=r,
        )
        self.observations_dropped = Counter(
            "slawatch_agent_observations_dropped_total",
            "Observations the agent reports it dropped from its spool unsent.",
            ("agent",),
            registry=r,
        )
        self.batches_dropped = Counter(
            "slawatch_agent_batches_dropped_total",
            "Batches the agent reports it dropped from its spool unsent, by reason.",
            ("agent", "reason"),
            registry=r,
        )
        self.inventory_reloads = Counter(
            "slawatch_inventory_reloads_total",
            "Inventory reloads (SIGHUP or file change), by result.",
            ("result",),
            registry=r,
        )
        self.series_limited = Counter(
            "slawatch_metrics_series_limited_total",
            "Stored observations not exported because a check series limit was reached, "
            "by agent and limit (per_agent, total).",
            ("agent", "limit"),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "slawatch_store_commit_duration_seconds",
            "Time to commit one group of writes.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        r.register(_AgentCollector(self._agents))
        r.register(
            _SeriesBudgetCollector(self._budgets, max_check_series_per_agent, max_check_series)
        )
        self._preinitialise()

    def _preinitialise(self) -> None:
        """Every label value known in advance gets its series now, at 0: a counter series
        born at 1 is invisible to increase(), so an alert on it would miss the first event."""
        for result in BATCH_RESULTS:
            self.batches.labels(result)
        for rule in RULES:
            self.rejections.labels(rule)

    def watch_sla(self, db_path: Path) -> None:
        """Export each service item's month so far (collector/exporters/sla_metrics.py)."""
        from collector.exporters.sla_metrics import SlaCollector

        self.registry.register(SlaCollector(db_path))

    def watch_attribution(self, runner: AttributionSource) -> None:
        """Export item states, incidents and the runner's health
        (collector/exporters/attribution_metrics.py)."""
        from collector.exporters.attribution_metrics import AttributionCollector

        self.registry.register(AttributionCollector(runner))

    def watch_inventory(self, distributor: ConfigDistributor) -> None:
        # Only a collector with an inventory has reloads: without one, no series.
        for result in RELOAD_RESULTS:
            self.inventory_reloads.labels(result)
        distributor.on_reload = lambda result: self.inventory_reloads.labels(result).inc()

    def _agent(self, agent_id: str) -> _AgentState:
        return self._agents.setdefault(agent_id, _AgentState())

    def agent_connected(self, agent_id: str, certificate_not_after: float | None = None) -> None:
        """A stream of the agent was admitted; ``certificate_not_after`` is when its client
        certificate expires (None without mTLS)."""
        state = self._agent(agent_id)
        state.open_streams += 1
        state.sessions += 1
        if certificate_not_after is not None:
            state.certificate_not_after = certificate_not_after
        # The agent's counters that alerts take increase() of, at 0 from its first
        # stream on (labels() keeps a series that exists as it is).
        self.observations_dropped.labels(agent_id)
        for limit in LIMITS:
            self.series_limited.labels(agent_id, limit)

    def agent_disconnected(self, agent_id: str) -> None:
        state = self._agent(agent_id)
        state.open_streams = max(0, state.open_streams - 1)

    def heartbeat(self, agent_id: str, heartbeat: up.Heartbeat) -> None:
        state = self._agent(agent_id)
        state.heartbeat = heartbeat
        state.heartbeat_received = time.time()

    def stored(self, agent_id: str, observations: list[pb.Observation]) -> None:
        self.batches.labels(BATCH_ACCEPTED).inc()
        self.observations.inc(len(observations))
        for o in observations:
            self._observe(agent_id, o)

    def spool_drops(self, agent_id: str, losses: list[DropLoss]) -> None:
        """Counted when the carrying batch is stored, so a resent batch counts once;
        what the collector had anyway (stored, or reported before) is not counted."""
        for loss in losses:
            self.observations_dropped.labels(agent_id).inc(loss.observations)
            self.batches_dropped.labels(agent_id, loss.reason).inc(loss.batches)

    def config_status(self, agent_id: str, status: up.ConfigStatus) -> None:
        self._agent(agent_id).config_status = status

    def _observe(self, agent_id: str, o: pb.Observation) -> None:
        key = (agent_id, o.check_id, KIND_NAMES[o.kind], o.target)
        if key not in self._check_series and not self._admit(key):
            return
        self.packets_sent.labels(*key).inc(o.packets_sent)
        self.packets_received.labels(*key).inc(o.packets_received)
        self.rounds.labels(*key, OUTCOME_NAMES[o.outcome]).inc()
        if o.outcome != pb.OUTCOME_OK:
            self.round_errors.labels(*key, ERROR_CLASS_NAMES[o.error_class]).inc()
        self.success.labels(*key).set(1.0 if o.outcome == pb.OUTCOME_OK else 0.0)
        self.last_round.labels(*key).set(o.start_unix_ns / 1e9)
        histogram = self.rtt.labels(*key)
        for sample in o.rtt.samples_ns:
            histogram.observe(sample / 1e9)
        self.duration.labels(*key).set(o.duration_ns / 1e9)
        detail = o.WhichOneof("detail")
        if detail == "http":
            self.http_status.labels(*key).set(o.http.status_code)
            self.ttfb.labels(*key).set(o.http.time_to_first_byte_ns / 1e9)
            self._observe_tls(key, o.http.tls if o.http.HasField("tls") else None)
        elif detail == "mail":
            self._observe_tls(key, o.mail.tls if o.mail.HasField("tls") else None)
        elif detail == "host":
            self._host.observe(agent_id, o.check_id, o.host)
        elif detail == "path":
            self._path.observe(key, o.path)
        elif detail == "egress_loss":
            self._egress_loss.observe(key, o.egress_loss)

    def _admit(self, key: tuple[str, str, str, str]) -> bool:
        """Whether a check not exported yet may be: O(1), it runs per observation of a
        refused check. The agent's own bound comes first, so an agent over it is told
        so even when the collector is full too."""
        agent_id = key[0]
        budget = self._budgets.get(agent_id)
        if budget is None:
            budget = self._budgets[agent_id] = _SeriesBudget()
        if budget.checks >= self._max_check_series_per_agent:
            limit = PER_AGENT
        elif len(self._check_series) >= self._max_check_series:
            limit = TOTAL
        else:
            budget.checks += 1
            self._check_series.add(key)
            return True
        refused = budget.refused.get(limit)
        if refused is None:
            refused = budget.refused[limit] = self.series_limited.labels(agent_id, limit)
            if limit == PER_AGENT:
                log.warning(
                    "agent %s has %d checks exported, its limit "
                    "(--max-check-series-per-agent): results of its further checks "
                    "(first: %s) are stored, not exported",
                    agent_id, budget.checks, key[1],
                )  # fmt: skip
            else:
                log.warning(
                    "%d checks exported, the limit (--max-check-series): results of "
                    "further checks of agent %s (first: %s, it has %d exported) are "
                    "stored, not exported",
                    len(self._check_series), agent_id, key[1], budget.checks,
                )  # fmt: skip
        refused.inc()
        return False

    def _observe_tls(self, key: tuple[str, str, str, str], tls: pb.TlsDetail | None) -> None:
        if tls is None:
            return
        self.tls_handshake.labels(*key).set(tls.handshake_ns / 1e9)
        if tls.cert_not_after_unix:
            self.cert_expiry.labels(*key).set(tls.cert_not_after_unix)
