"""DNS: query a name of a given type against a given server.

UDP first, repeated over TCP when the answer comes back truncated (or TCP
from the start with ``tcp: true``). Reports the rcode, the answers and the
latency; a wrong rcode is ``bad_status``, a missing expected answer is
``answer_mismatch``. dnspython does the wire format.

No answer at all is ``connect_timeout`` (the server was never reached: the
path, the host, or a server that is down without the host saying so); an
ICMP port-unreachable is ``connect_refused`` (the host is up, no server).
"""

from __future__ import annotations

import socket
import time

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.inet
import dns.message
import dns.rcode
import dns.rdatatype

from agent.check_options import DnsOptions
from agent.config import CheckConfig, parse_dns_server
from agent.net.streams import (
    Phase,
    ProbeFailure,
    bad_status,
    failure_from_os_error,
    protocol_error,
    resolve,
)
from agent.observation import Observation
from agent.probes.base import ExchangeProbe
from slawatch.v1 import observation_pb2 as pb

MAX_ANSWERS = 50


def _normal(text: str) -> str:
    return text.strip().rstrip(".").lower()


class DnsProbe(ExchangeProbe[DnsOptions]):
    options_type = DnsOptions

    def __init__(self, check: CheckConfig) -> None:
        super().__init__(check)
        self._host, self._port = parse_dns_server(check.target)

    async def exchange(self, phase: Phase, observation: Observation) -> None:
        options = self._options
        detail = pb.DnsDetail()
        observation.detail = detail
        _family, server = await resolve(self._host, self._port)
        query = dns.message.make_query(options.name, dns.rdatatype.from_text(options.record_type))
        phase.name = "connect"  # with no answer at all we never reached a server
        started = time.monotonic_ns()
        response, used_tcp = await self._ask(query, server)
        observation.rtt_samples_ns = [time.monotonic_ns() - started]
        detail.rcode = dns.rcode.to_text(response.rcode())
        answers = [rr.to_text() for rrset in response.answer for rr in rrset][:MAX_ANSWERS]
        detail.answers.extend(a[:255] for a in answers)
        detail.retried_over_tcp = used_tcp and not options.tcp
        if detail.rcode != options.expect_rcode:
            raise bad_status(f"rcode {detail.rcode}, expected {options.expect_rcode}")
        missing = {_normal(e) for e in options.expect} - {_normal(a) for a in answers}
        if missing:
            raise ProbeFailure(
                pb.OUTCOME_FAILED,
                pb.ERROR_CLASS_ANSWER_MISMATCH,
                f"answer lacks {', '.join(sorted(missing))}",
            )

    async def _ask(
        self, query: dns.message.Message, server: str
    ) -> tuple[dns.message.Message, bool]:
        """The response, and whether it came over TCP."""
        timeout = self.check.timeout
        try:
            if self._options.tcp:
                tcp = await dns.asyncquery.tcp(query, server, timeout=timeout, port=self._port)
                return tcp, True
            # A connected UDP socket, so that an ICMP port-unreachable from the
            # server's host comes back as "refused" instead of a silent timeout.
            backend = dns.asyncbackend.get_backend("asyncio")
            family = dns.inet.af_for_address(server)
            udp = await backend.make_socket(  # type: ignore[no-untyped-call]
                family, socket.SOCK_DGRAM, 0, None, (server, self._port)
            )
            try:
                return await dns.asyncquery.udp_with_fallback(
                    query, server, timeout=timeout, port=self._port, udp_sock=udp
                )
            finally:
                await udp.close()
        except dns.exception.Timeout:
            raise TimeoutError from None
        except OSError as exc:  # e.g. ICMP port unreachable: the host is up, no server
            raise failure_from_os_error(exc) from None
        except dns.exception.DNSException as exc:
            raise protocol_error(f"bad DNS answer: {exc}") from None
