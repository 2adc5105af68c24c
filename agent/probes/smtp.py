"""SMTP: read the 220 greeting, optionally EHLO and STARTTLS, then QUIT politely.

A 4xx/5xx greeting is ``bad_status`` (an SMTP server saying it will not
serve); a greeting that is not SMTP at all is ``protocol_error``.
"""

from __future__ import annotations

import re

from agent.check_options import TlsMode
from agent.net.streams import Phase, Stream, bad_status, protocol_error
from agent.probes.mail import MailProbe
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


class SmtpProbe(MailProbe):
    async def converse(self, stream: Stream, phase: Phase, detail: pb.MailDetail) -> None:
        code, lines = await read_reply(stream, phase, "greeting")
        detail.banner, detail.reply_code = f"{code} {lines[0]}"[:256], code
        if code != 220:
            raise bad_status(f"greeting {code} {lines[0][:80]}")
        if self._options.tls_mode is TlsMode.STARTTLS:
            await self._starttls(stream, phase)
        await _quit(stream, phase)

    async def _starttls(self, stream: Stream, phase: Phase) -> None:
        ehlo = f"EHLO {self._options.ehlo_name}"
        await stream.send_line(ehlo)
        code, lines = await read_reply(stream, phase, "EHLO reply")
        if code != 250:
            raise bad_status(f"EHLO answered {code} {lines[0][:80]}")
        if not any(line.upper().startswith("STARTTLS") for line in lines[1:]):
            raise protocol_error("the server does not offer STARTTLS")
        await stream.send_line("STARTTLS")
        code, lines = await read_reply(stream, phase, "STARTTLS reply")
        if code != 220:
            raise bad_status(f"STARTTLS answered {code} {lines[0][:80]}")
        await self.upgrade(stream, phase)
        await stream.send_line(ehlo)
        await read_reply(stream, phase, "EHLO reply after STARTTLS")


async def _quit(stream: Stream, phase: Phase) -> None:
    await stream.send_line("QUIT")
    code, lines = await read_reply(stream, phase, "QUIT reply")
    if code != 221:
        raise bad_status(f"QUIT answered {code} {lines[0][:80]}")
