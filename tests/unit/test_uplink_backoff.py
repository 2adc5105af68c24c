"""The uplink's reconnect backoff, with sessions scripted and time faked: it doubles while
the collector stays away, and starts again at 0.5 s after every healthy session."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from agent import uplink as uplink_module
from agent.config import config_from_mapping
from agent.spool import Spool, SpoolBounds
from agent.uplink import BACKOFF_INITIAL, BACKOFF_MAX, HEALTHY_SESSION, Uplink
from slawatch.v1 import observation_pb2 as pb
from slawatch.v1 import uplink_pb2 as up


@dataclass(frozen=True)
class Down:
    """The collector is unreachable: the connect fails."""


@dataclass(frozen=True)
class Up:
    """The hello is acked; the session lasts ``seconds``, with a batch acked or not,
    then the collector goes away."""

    seconds: float
    acked: bool = False


Step = Down | Up


def _unavailable() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone"
    )


class ScriptedUplink(Uplink):
    """The real backoff loop; each session follows the script instead of gRPC."""

    def __init__(self, spool: Spool, script: list[Step]) -> None:
        config = config_from_mapping(
            {"agent_id": "a", "collector": {"address": "127.0.0.1:9", "insecure": True}}
        )
        self.now = 1000.0
        self.waits: list[float] = []
        super().__init__(config, spool, up.Heartbeat, sleep=self._fake_sleep,
                         clock=lambda: self.now)  # fmt: skip
        self._script = list(script)

    async def _fake_sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def _session(self) -> None:
        step = self._script.pop(0)
        if not self._script:
            self._stopping = True  # the last step: run() returns after it
        if isinstance(step, Up):
            self._established()
            if step.acked:
                batch = up.ObservationBatch(observations=[pb.Observation(check_id="c")])
                sequence = self._spool.append(batch)
                self._in_flight[sequence] = batch
                self._take_ack(up.BatchAck(sequence=sequence, status=up.BatchAck.STATUS_ACCEPTED))
            self.now += step.seconds
        raise _unavailable()


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait at the top of its jitter range, so waits are the backoff itself."""
    monkeypatch.setattr(uplink_module.random, "uniform", lambda _low, high: high)


def waits_for(tmp_path: Path, script: list[Step]) -> list[float]:
    spool = Spool(tmp_path / "spool", SpoolBounds())
    try:
        link = ScriptedUplink(spool, script)
        asyncio.run(link.run())
        return link.waits
    finally:
        spool.close()


def outage(failures: int) -> list[Step]:
    return [Down()] * failures


def test_backoff_doubles_to_its_cap_while_the_collector_stays_away(tmp_path: Path) -> None:
    waits = waits_for(tmp_path, outage(10))
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert waits[0] == BACKOFF_INITIAL
    assert max(waits) == BACKOFF_MAX


def test_each_outage_after_a_session_with_an_acked_batch_starts_at_half_a_second(
    tmp_path: Path,
) -> None:
    # Three collector restarts, each after a short session that stored a batch.
    script = [*outage(4), Up(1, acked=True), *outage(3), Up(1, acked=True), *outage(3),
              Up(1, acked=True), Down()]  # fmt: skip
    # After each session: 0.5 s, then 1, 2, 4 s while the collector is still away.
    assert waits_for(tmp_path, script) == [0.5, 1, 2, 4, 0.5, 1, 2, 4, 0.5, 1, 2, 4, 0.5]


def test_a_session_up_long_enough_is_healthy_without_any_batch(tmp_path: Path) -> None:
    script = [*outage(5), Up(HEALTHY_SESSION), Down(), Down()]
    assert waits_for(tmp_path, script) == [0.5, 1, 2, 4, 8, 0.5, 1]


def test_hello_acks_without_a_healthy_session_do_not_reset_the_backoff(
    tmp_path: Path,
) -> None:
    # A collector that takes the hello, then fails the stream at once, again and again,
    # is retried ever less often, like one that is down.
    script = [*outage(2), *[Up(0.1)] * 6, Down()]
    assert waits_for(tmp_path, script) == [0.5, 1, 2, 4, 8, 16, 30, 30]
