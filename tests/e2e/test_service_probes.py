"""The http, smtp, pop3 and dns probes against real servers in the lab.

Each case runs ``slawatch-agent probe ... --json`` in the agent host, two hops
from the servers, and asserts the outcome and the exact error class.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Site, needs
from tests.e2e.helpers import probe_json
from tests.lab.netlab import Lab
from tests.lab.pki import days_from_now
from tests.lab.servers import (
    DnsZone,
    start_banner_server,
    start_dns,
    start_nginx,
    start_pop3,
    start_smtp,
)

pytestmark = pytest.mark.lab


def probe(site: Site, *argv: str) -> dict[str, Any]:
    """One round; the result of that round."""
    report = probe_json(site.agent, ["probe", *argv, "--timeout", "2"])
    assert report["rounds"] == 1
    result: dict[str, Any] = report["results"][0]
    return result


def classes(result: dict[str, Any]) -> tuple[str, str]:
    return result["outcome"], result["error_class"]


# -- HTTP and HTTPS against nginx --------------------------------------------


def test_http_against_nginx(lab: Lab, site: Site) -> None:
    needs("nginx")
    expired = site.ca.issue(
        site.tmp / "pki",
        "expired",
        san_ips=[site.address],
        not_before=days_from_now(-30),
        not_after=days_from_now(-1),
    )
    wrong = site.ca.issue(site.tmp / "pki", "wrong", san_dns=["elsewhere.lab.test"])
    web = start_nginx(
        site.target,
        site.tmp,
        site.cert,
        extra_tls={"expired": (8443, expired), "wrong-name": (9443, wrong)},
    )
    ca = ("--ca-file", str(site.ca.cert_path))  # fmt: skip

    ok = probe(site, "http", web.url("/"))
    assert classes(ok) == ("ok", "none")
    assert ok["detail"]["status_code"] == 200
    assert classes(probe(site, "http", web.url("/down"))) == ("failed", "bad_status")
    assert probe(site, "http", web.url("/down"))["detail"]["status_code"] == 503
    assert classes(probe(site, "http", web.url("/moved"), "--expect", "2xx")) == (
        "failed",
        "bad_status",
    )
    followed = probe(site, "http", web.url("/moved"), "--follow", "--expect", "2xx")
    assert classes(followed) == ("ok", "none")
    assert followed["detail"]["redirects_followed"] == 1

    https = probe(site, "http", web.url("/", "https"), *ca)
    assert classes(https) == ("ok", "none")
    tls = https["detail"]["tls"]
    assert tls["verified"] is True
    assert int(tls["cert_not_after_unix"]) > int(days_from_now(20).timestamp())
    assert tls["protocol"].startswith("TLS")

    stale = probe(site, "http", web.url("/", "expired"), *ca)
    assert classes(stale) == ("failed", "tls_error")
    assert "expired" in stale["error_detail"]
    misnamed = probe(site, "http", web.url("/", "wrong-name"), *ca)
    assert classes(misnamed) == ("failed", "tls_error")
    assert "mismatch" in misnamed["error_detail"]


def test_http_reads_headers_only(site: Site) -> None:
    needs("nginx")
    web = start_nginx(site.target, site.tmp, site.cert)
    result = probe(site, "http", web.url("/big"), "--method", "GET")
    assert classes(result) == ("ok", "none")
    # nginx logs the bytes it managed to send before we hung up: far from the body.
    assert web.bytes_sent_for("/big") < web.big_bytes / 10


def test_http_closed_port_and_dropped_path(lab: Lab, site: Site) -> None:
    needs("nginx")
    web = start_nginx(site.target, site.tmp, site.cert)
    web.stop()
    assert classes(probe(site, "http", web.url("/"))) == ("refused", "connect_refused")
    web.start()
    lab.cut(lab.hosts["r1"], site.target)
    assert classes(probe(site, "http", web.url("/"))) == ("timeout", "connect_timeout")


# -- SMTP against aiosmtpd -----------------------------------------------------


def test_smtp_against_a_real_server(site: Site) -> None:
    smtp = start_smtp(site.target, site.tmp, site.cert)
    target = f"{site.address}:{smtp.ports['smtp']}"
    ca = ("--ca-file", str(site.ca.cert_path))

    plain = probe(site, "smtp", target)
    assert classes(plain) == ("ok", "none")
    assert plain["detail"]["reply_code"] == 220
    starttls = probe(site, "smtp", target, "--tls", "starttls", *ca)
    assert classes(starttls) == ("ok", "none")
    assert starttls["detail"]["tls"]["verified"] is True
    smtps = probe(site, "smtp", f"{site.address}:{smtp.ports['smtps']}", "--tls", "implicit", *ca)
    assert classes(smtps) == ("ok", "none")

    smtp.stop()
    assert classes(probe(site, "smtp", target)) == ("refused", "connect_refused")


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        (b"554 go away\r\n", ("failed", "bad_status")),
        (b"421 too busy, come back later\r\n", ("failed", "bad_status")),
        (b"SSH-2.0-OpenSSH_9.2\r\n", ("failed", "protocol_error")),
    ],
)
def test_smtp_wrong_banner(site: Site, banner: bytes, expected: tuple[str, str]) -> None:
    start_banner_server(site.target, site.tmp, 2525, banner)
    assert classes(probe(site, "smtp", f"{site.address}:2525")) == expected


# -- POP3 against dovecot -------------------------------------------------------


def test_pop3_against_dovecot(site: Site) -> None:
    needs("pop3")
    pop = start_pop3(site.target, site.tmp, site.cert)
    target = f"{site.address}:{pop.ports['pop3']}"
    ca = ("--ca-file", str(site.ca.cert_path))

    assert classes(probe(site, "pop3", target)) == ("ok", "none")
    stls = probe(site, "pop3", target, "--tls", "starttls", *ca)
    assert classes(stls) == ("ok", "none")
    assert stls["detail"]["banner"].startswith("+OK")
    pop3s = probe(site, "pop3", f"{site.address}:{pop.ports['pop3s']}", "--tls", "implicit", *ca)
    assert classes(pop3s) == ("ok", "none")
    assert pop3s["detail"]["tls"]["verified"] is True

    pop.stop()
    assert classes(probe(site, "pop3", target)) == ("refused", "connect_refused")


@pytest.mark.parametrize(
    ("banner", "expected"),
    [
        (b"-ERR maintenance\r\n", ("failed", "bad_status")),
        (b"220 mail.lab.test ESMTP\r\n", ("failed", "protocol_error")),
    ],
)
def test_pop3_wrong_banner(site: Site, banner: bytes, expected: tuple[str, str]) -> None:
    start_banner_server(site.target, site.tmp, 1110, banner)
    assert classes(probe(site, "pop3", f"{site.address}:1110")) == expected


# -- DNS against unbound ----------------------------------------------------------


def test_dns_against_unbound(site: Site) -> None:
    needs("dns")
    zone = DnsZone()
    dns = start_dns(site.target, site.tmp, zone=zone)
    server = site.address

    answer = probe(site, "dns", server, "--name", zone.a_name, "--expect", zone.a_address)
    assert classes(answer) == ("ok", "none")
    assert answer["detail"]["rcode"] == "NOERROR"
    assert answer["detail"]["answers"] == [zone.a_address]
    aaaa = probe(site, "dns", server, "--name", zone.a_name, "--type", "AAAA")
    assert aaaa["detail"]["answers"] == [zone.aaaa_address]

    mismatch = probe(site, "dns", server, "--name", zone.a_name, "--expect", "198.51.100.99")
    assert classes(mismatch) == ("failed", "answer_mismatch")
    missing = probe(site, "dns", server, "--name", zone.missing_name)
    assert classes(missing) == ("failed", "bad_status")
    assert missing["detail"]["rcode"] == "NXDOMAIN"
    negative = probe(site, "dns", server, "--name", zone.missing_name, "--expect-rcode", "NXDOMAIN")
    assert classes(negative) == ("ok", "none")
    broken = probe(site, "dns", server, "--name", zone.servfail_name)
    assert classes(broken) == ("failed", "bad_status")
    assert broken["detail"]["rcode"] == "SERVFAIL"

    big = probe(site, "dns", server, "--name", zone.big_name, "--type", "TXT")
    assert classes(big) == ("ok", "none")
    assert big["detail"]["retried_over_tcp"] is True
    assert len(big["detail"]["answers"]) == zone.big_records

    dns.stop()
    down = probe(site, "dns", server, "--name", zone.a_name)
    assert classes(down) == ("refused", "connect_refused")
