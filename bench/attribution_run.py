"""How long one attribution run takes, on synthetic signals of a provider-sized topology.

    .venv/bin/python bench/attribution_run.py --segments 20 --nodes 10 --hours 6

Each node has two service items (ICMP from outside and from a peer; HTTP from outside
and locally) and a host check, every check every 10 s; one segment is cut for 10
minutes and one node is down for 5, so the rules run on real down slots. Prints the
wall time of ``attribute``; with ``--store DIR`` the rounds are first written to a real
collector store there, and the time ``load_signals`` takes to read them back is printed
too (what the collector's runner does every run, reading and deciding in turn).
No network traffic: the signals are made up in this process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import time
from pathlib import Path

from collector.attribution.engine import attribute
from collector.attribution.model import Topology
from collector.attribution.signals import CheckRounds, HostRound, Round, Signals, load_signals
from collector.attribution.topology import topology_from_inventory
from collector.inventory import inventory_from_mapping
from collector.store.sqlite import Store

S = 10**9


def _inventory(segments: int, nodes: int) -> dict[str, object]:
    segs = [
        {"id": f"g{g}", "nodes": [
            {"id": f"n{g}-{n}", "address": f"198.18.{g}.{n + 1}", "agent": f"a{g}-{n}"}
            for n in range(nodes)
        ]}
        for g in range(segments)
    ]  # fmt: skip
    segs.append({"id": "out", "nodes": [
        {"id": "out", "address": "198.19.0.1", "agent": "out", "role": "outside"}]})  # fmt: skip
    ids = [f"{g}-{n}" for g in range(segments) for n in range(nodes)]
    agents: dict[str, object] = {
        f"a{i}": {"checks": [
            {"id": "web-local", "kind": "http", "service": f"web-{i}"},
            {"id": "host", "kind": "host"},
        ]}
        for i in ids
    }  # fmt: skip
    agents["out"] = {"checks": [
        c for i in ids for c in (
            {"id": f"ping-{i}", "kind": "icmp", "service": f"node-{i}"},
            {"id": f"web-{i}", "kind": "http", "service": f"web-{i}"},
        )
    ]}  # fmt: skip
    services = [
        {"id": f"{kind}-{i}", "node": f"n{i}", "owner": "c", "contract": "closte"}
        for i in ids
        for kind in ("node", "web")
    ]
    return {"sites": [{"id": "s", "segments": segs}], "services": services, "agents": agents}


def _signals(inventory: dict[str, object], start: int, end: int) -> Signals:
    step = 10 * S
    starts = range(start, end, step)
    cut = (start + (end - start) // 2, start + (end - start) // 2 + 600 * S)  # g0 cut
    down = (cut[0] - 1800 * S, cut[0] - 1500 * S)  # n1-0 down
    checks: dict[tuple[str, str], CheckRounds] = {}
    host: dict[str, tuple[HostRound, ...]] = {}
    for agent, entry in inventory["agents"].items():  # type: ignore[attr-defined]
        silent = down if agent == "a1-0" else (0, 0)
        mine = [t for t in starts if not silent[0] <= t < silent[1]]
        for check in entry["checks"]:
            target = check["id"].split("-", 1)[-1]
            failing = (agent == "out" and target.startswith("0-")) or (
                agent == "out" and target == "1-0"
            )
            window = cut if target.startswith("0-") else down
            rounds = tuple(
                Round(t, S // 10, not (failing and window[0] <= t < window[1]), "ok", "none", t)
                for t in mine
            )
            checks[(agent, check["id"])] = CheckRounds(agent, check["id"], check["kind"], "",
                                                       step, rounds)  # fmt: skip
        host[agent] = tuple(HostRound(t, (), 100.0) for t in mine)
    return Signals(checks, host, dict.fromkeys(host, step))


def _coverage(signals: Signals, end: int) -> list[tuple[str, int, int]]:
    """Each agent ran from its first round to the span's end, but where its host check
    has a gap (the node that is down)."""
    rows = []
    for agent, rounds in signals.host.items():
        begin = rounds[0].start_ns
        for before, after in itertools.pairwise(rounds):
            if after.start_ns - before.start_ns > 60 * S:
                rows.append((agent, begin, before.start_ns + S))
                begin = after.start_ns
        rows.append((agent, begin, end))
    return rows


def _through_store(
    directory: Path, topology: Topology, signals: Signals, start: int, end: int
) -> tuple[float, Signals]:
    """Write the rounds as the ingest would (one row each, coverage per agent), then time
    reading them back."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "bench.db"
    db.unlink(missing_ok=True)
    Store(db).close()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO observations (agent_id, sequence_epoch, sequence, check_id, kind, "
            "target, start_ns, duration_ns, outcome, error_class, error_detail, packets_sent, "
            "packets_received) VALUES (?, 1, 1, ?, ?, '', ?, ?, ?, 'none', '', 1, 1)",
            (
                (c.agent_id, c.check_id, c.kind, r.start_ns, r.duration_ns,
                 "ok" if r.ok else "timeout")
                for c in signals.checks.values() for r in c.rounds
            ),
        )  # fmt: skip
        conn.executemany("INSERT INTO coverage VALUES (?, ?, ?)", _coverage(signals, end))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        began = time.perf_counter()
        loaded = load_signals(conn, topology, start, end)
        return time.perf_counter() - began, loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=10, help="nodes per segment")
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--store", type=Path, help="write the rounds to a store in DIR first")
    args = parser.parse_args()
    inventory = _inventory(args.segments, args.nodes)
    topology = topology_from_inventory(inventory_from_mapping(inventory))
    end = 1_800_000_000 * S
    start = end - int(args.hours * 3600 * S)
    signals = _signals(inventory, start, end)
    loading = None
    if args.store is not None:
        loading, signals = _through_store(args.store, topology, signals, start, end)
    began = time.perf_counter()
    result = attribute(topology, signals, start, end)
    seconds = time.perf_counter() - began
    print(json.dumps({
        "items": len(topology.items), "checks": len(signals.checks),
        "rounds": sum(len(c.rounds) for c in signals.checks.values()),
        "hours": args.hours, "attribute_seconds": round(seconds, 2),
        "load_signals_seconds": None if loading is None else round(loading, 2),
        "incidents": [(i.root.id, i.cause.value, len(i.affected)) for i in result.incidents],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
