"""HTTP and HTTPS: fetch the status line and headers only, never the body.

Reports the status code, time to first byte, the TLS handshake and, for
HTTPS, the certificate's expiry. The request says ``Connection: close`` and
the probe hangs up once the headers are in, so a large body costs nothing.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import h11

from agent.check_options import HttpOptions
from agent.net.streams import Phase, ProbeFailure, Stream, bad_status, connect, protocol_error
from agent.observation import Observation
from agent.probes.base import ExchangeProbe
from slawatch.v1 import observation_pb2 as pb

MAX_REDIRECTS = 5
MAX_HEADER_BYTES = 64 * 1024
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def status_expected(status: int, expected: tuple[str, ...]) -> bool:
    """``2xx`` matches a class, ``301`` an exact code."""
    text = str(status)
    return any(text == e or (e.endswith("xx") and text[0] == e[0]) for e in expected)


class HttpProbe(ExchangeProbe[HttpOptions]):
    options_type = HttpOptions

    async def exchange(self, phase: Phase, observation: Observation) -> None:
        detail = pb.HttpDetail()
        observation.detail = detail
        url = self.check.target
        for redirect in range(MAX_REDIRECTS + 1):
            response = await self._fetch(url, phase, observation, detail)
            location = _header(response, b"location")
            follow = self._options.follow_redirects and response.status_code in REDIRECT_CODES
            if not follow or location is None:
                break
            if redirect == MAX_REDIRECTS:
                raise protocol_error(f"more than {MAX_REDIRECTS} redirects")
            url = urljoin(url, location)
            detail.redirects_followed += 1
        if not status_expected(detail.status_code, self._options.expect_status):
            expected = ", ".join(self._options.expect_status)
            raise bad_status(f"HTTP {detail.status_code}, expected {expected}")

    async def _fetch(
        self, url: str, phase: Phase, observation: Observation, detail: pb.HttpDetail
    ) -> h11.Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise protocol_error(f"cannot follow redirect to {url!r}")
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        stream = await connect(parts.hostname, port, phase, self._options.tls if https else None)
        try:
            observation.rtt_samples_ns = [stream.connect_ns]
            if stream.tls is not None:
                detail.tls.CopyFrom(stream.tls)
            host = self._options.host_header or parts.netloc
            target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
            response = await _request_headers(stream, phase, self._options.method, host, target)
        finally:
            await stream.close()
        detail.status_code = response.status_code
        detail.http_version = response.http_version.decode()
        detail.time_to_first_byte_ns = stream.last_read_ns
        return response


def _header(response: h11.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _request_headers(
    stream: Stream, phase: Phase, method: str, host: str, target: str
) -> h11.Response:
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
    request = h11.Request(
        method=method,
        target=target,
        headers=[
            ("Host", host),
            ("User-Agent", "slawatch"),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ],
    )
    await stream.send(connection.send(request) + (connection.send(h11.EndOfMessage()) or b""))
    phase.name = "waiting for the response headers"
    while True:
        try:
            event = connection.next_event()
        except h11.RemoteProtocolError as exc:
            raise protocol_error(f"not an HTTP response: {exc}") from None
        if isinstance(event, h11.Response):
            return event
        if isinstance(event, h11.ConnectionClosed):
            raise protocol_error("connection closed before the response headers")
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.read_some(phase, "the response headers"))
        elif isinstance(event, h11.InformationalResponse):
            continue  # 1xx: the real response follows
        else:
            raise ProbeFailure(pb.OUTCOME_FAILED, pb.ERROR_CLASS_PROTOCOL_ERROR, repr(event))
