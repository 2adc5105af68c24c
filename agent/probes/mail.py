"""What the SMTP and POP3 probes share: the connection, TLS from the start or
upgraded in the conversation, and the greeting's detail."""

from __future__ import annotations

from agent.check_options import MailOptions, TlsMode
from agent.config import CheckConfig, parse_host_port
from agent.net.streams import Phase, Stream, connect, start_tls, tls_context
from agent.observation import Observation
from agent.probes.base import ExchangeProbe
from slawatch.v1 import observation_pb2 as pb


class MailProbe(ExchangeProbe[MailOptions]):
    options_type = MailOptions

    def __init__(self, check: CheckConfig) -> None:
        super().__init__(check)
        self._host, self._port = parse_host_port(check.target)

    async def exchange(self, phase: Phase, observation: Observation) -> None:
        options = self._options
        detail = pb.MailDetail()
        observation.detail = detail
        implicit = options.tls if options.tls_mode is TlsMode.IMPLICIT else None
        stream = await connect(self._host, self._port, phase, implicit)
        try:
            observation.rtt_samples_ns = [stream.connect_ns]
            await self.converse(stream, phase, detail)
            if stream.tls is not None:
                detail.tls.CopyFrom(stream.tls)
        finally:
            await stream.close()

    async def upgrade(self, stream: Stream, phase: Phase) -> None:
        """TLS after the server agreed to STARTTLS / STLS."""
        tls = self._options.tls
        await start_tls(stream, tls_context(tls), tls.server_name or self._host, tls.verify, phase)

    async def converse(self, stream: Stream, phase: Phase, detail: pb.MailDetail) -> None:
        """The protocol's own conversation, from the greeting to QUIT."""
        raise NotImplementedError
