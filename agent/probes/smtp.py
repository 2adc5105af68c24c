"""SMTP: read the 220 greeting, optionally EHLO and STARTTLS, then QUIT politely.

A 4xx/5xx greeting is ``bad_status`` (an SMTP server saying it will not
serve); a greeting that is not SMTP at all is ``protocol_error``.
"""

from __future__ import annotations

import re

from agent.check_options import MailOptions, TlsMode
from agent.config import CheckConfig, parse_host_port
from agent.net.streams import Phase, Stream, bad_status, connect, protocol_error, start_tls
from agent.net.streams import tls_context as make_tls_context
from agent.observation import Observation
from agent.probes.base import run_exchange
from slawatch.v1 import observation_pb2 as pb

_REPLY_LINE = re.compile(r"^(\d{3})(?:([ -])(.*))?$")
MAX_REPLY_LINES = 100


async def read_reply(stream: Stream, phase: Phase, what: str) -> tuple[int, list[str]]:
    """A (possibly multi-line) SMTP reply: its code and its text lines."""
    lines: list[str] = []
    for _ in range(MAX_REPLY_LINES):
        line = await stream.read_line(phase, what)
        match = _REPLY_LINE.match(line)
        if match is None:
            raise protocol_error(f"{what}: not an SMTP reply: {line[:80]!r}")
        lines.append(match[3] or "")
        if match[2] != "-":
            return int(match[1]), lines
    raise protocol_error(f"{what}: more than {MAX_REPLY_LINES} lines")


class SmtpProbe:
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
            code, lines = await read_reply(stream, phase, "greeting")
            detail.banner, detail.reply_code = f"{code} {lines[0]}"[:256], code
            if code != 220:
                raise bad_status(f"greeting {code} {lines[0][:80]}")
            if options.tls_mode is TlsMode.STARTTLS:
                await self._starttls(stream, phase)
            await _quit(stream, phase)
            if stream.tls is not None:
                detail.tls.CopyFrom(stream.tls)
        finally:
            await stream.close()

    async def _starttls(self, stream: Stream, phase: Phase) -> None:
        await stream.send_line(f"EHLO {self._options.ehlo_name}")
        code, lines = await read_reply(stream, phase, "EHLO reply")
        if code != 250:
            raise bad_status(f"EHLO answered {code} {lines[0][:80]}")
        if not any(line.upper().startswith("STARTTLS") for line in lines[1:]):
            raise protocol_error("the server does not offer STARTTLS")
        await stream.send_line("STARTTLS")
        code, lines = await read_reply(stream, phase, "STARTTLS reply")
        if code != 220:
            raise bad_status(f"STARTTLS answered {code} {lines[0][:80]}")
        tls = self._options.tls
        await start_tls(
            stream, make_tls_context(tls), tls.server_name or self._host, tls.verify, phase
        )
        await stream.send_line(f"EHLO {self._options.ehlo_name}")
        await read_reply(stream, phase, "EHLO reply after STARTTLS")


async def _quit(stream: Stream, phase: Phase) -> None:
    await stream.send_line("QUIT")
    code, lines = await read_reply(stream, phase, "QUIT reply")
    if code != 221:
        raise bad_status(f"QUIT answered {code} {lines[0][:80]}")
