"""A request/response round that fails after a good connect (an HTTP 502) is a result
the collector takes: no RTT sample beside 0 received, which it would refuse (bad_rtt)."""

from __future__ import annotations

import asyncio
import time

from agent.config import check_from_mapping
from agent.probes.http import HttpProbe
from collector.ingest.validate import Limits, validate_observation


async def _answer_502(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


async def _one_round() -> tuple[object, ...]:
    server = await asyncio.start_server(_answer_502, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        check = check_from_mapping(
            {"id": "web", "kind": "http", "target": f"http://127.0.0.1:{port}/", "timeout": 5}
        )
        observation = await HttpProbe(check).run_round()
    wire = observation.to_wire()
    validate_observation(wire, "observations[0]", time.time_ns(), Limits())
    return (wire.outcome, wire.error_class, wire.packets_received, len(wire.rtt.samples_ns),
            wire.http.status_code)  # fmt: skip


def test_an_http_502_after_a_good_connect_is_valid_for_the_collector() -> None:
    from slawatch.v1 import observation_pb2 as pb

    assert asyncio.run(_one_round()) == (pb.OUTCOME_FAILED, pb.ERROR_CLASS_BAD_STATUS, 0, 0, 502)
