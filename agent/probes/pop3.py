"""POP3 and POP3S: read the +OK greeting, optionally STLS, then QUIT.

``-ERR`` is ``bad_status`` (a POP3 server refusing service); anything else
is ``protocol_error``.
"""

from __future__ import annotations

from agent.check_options import TlsMode
from agent.net.streams import Phase, Stream, bad_status, protocol_error
from agent.probes.mail import MailProbe
from slawatch.v1 import observation_pb2 as pb


async def read_status(stream: Stream, phase: Phase, what: str) -> str:
    """One POP3 status line; raises unless it is +OK."""
    line = await stream.read_line(phase, what)
    if line.startswith("+OK"):
        return line
    if line.startswith("-ERR"):
        raise bad_status(f"{what}: {line[:80]}")
    raise protocol_error(f"{what}: not a POP3 reply: {line[:80]!r}")


class Pop3Probe(MailProbe):
    async def converse(self, stream: Stream, phase: Phase, detail: pb.MailDetail) -> None:
        first = await stream.read_line(phase, "greeting")
        detail.banner = first[:256]
        if first.startswith("-ERR"):
            raise bad_status(f"greeting: {first[:80]}")
        if not first.startswith("+OK"):
            raise protocol_error(f"greeting: not a POP3 reply: {first[:80]!r}")
        if self._options.tls_mode is TlsMode.STARTTLS:
            await stream.send_line("STLS")
            await read_status(stream, phase, "STLS reply")
            await self.upgrade(stream, phase)
        await stream.send_line("QUIT")
        await read_status(stream, phase, "QUIT reply")
