"""POP3 and POP3S: read the +OK greeting, optionally STLS, then QUIT.

``-ERR`` is ``bad_status`` (a POP3 server refusing service); anything else
is ``protocol_error``.
"""

from __future__ import annotations

from agent.check_options import MailOptions, TlsMode
from agent.config import CheckConfig, parse_host_port
from agent.net.streams import Phase, Stream, bad_status, connect, protocol_error, start_tls
from agent.net.streams import tls_context as make_tls_context
from agent.observation import Observation
from agent.probes.base import run_exchange
from slawatch.v1 import observation_pb2 as pb


async def read_status(stream: Stream, phase: Phase, what: str) -> str:
    """One POP3 status line; raises unless it is +OK."""
    line = await stream.read_line(phase, what)
    if line.startswith("+OK"):
        return line
    if line.startswith("-ERR"):
        raise bad_status(f"{what}: {line[:80]}")
    raise protocol_error(f"{what}: not a POP3 reply: {line[:80]!r}")


class Pop3Probe:
    def __init__(self, check: CheckConfig) -> None:
        self.check = check
        self._options = check.options if isinstance(check.options, MailOptions) else MailOptions()
        self._host, self._port = parse_host_port(check.target)

    async def run_round(self) -> Observation:
        return await run_exchange(self.check, self._exchange)

    async def _exchange(self, phase: Phase, observation: Observation) -> None:
        options = self._options
        detail = pb.MailDetail()
        observation.detail = detail
        implicit = options.tls if options.tls_mode is TlsMode.IMPLICIT else None
        stream = await connect(self._host, self._port, phase, implicit)
        try:
            observation.rtt_samples_ns = [stream.connect_ns]
            first = await stream.read_line(phase, "greeting")
            detail.banner = first[:256]
            if first.startswith("-ERR"):
                raise bad_status(f"greeting: {first[:80]}")
            if not first.startswith("+OK"):
                raise protocol_error(f"greeting: not a POP3 reply: {first[:80]!r}")
            if options.tls_mode is TlsMode.STARTTLS:
                await stream.send_line("STLS")
                await read_status(stream, phase, "STLS reply")
                tls = options.tls
                await start_tls(
                    stream, make_tls_context(tls), tls.server_name or self._host, tls.verify, phase
                )
            await stream.send_line("QUIT")
            await read_status(stream, phase, "QUIT reply")
            if stream.tls is not None:
                detail.tls.CopyFrom(stream.tls)
        finally:
            await stream.close()
