"""The lab's real servers work, seen from another namespace with plain clients.

The protocol probes' tests trust these servers to behave like the real thing
(because they are the real thing); these smoke tests pin down the behaviour they
rely on, using only the standard library (and dnspython for DNS) as clients
inside the agent host, two hops from the target.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Site, needs
from tests.lab.netlab import Host
from tests.lab.pki import days_from_now
from tests.lab.servers import (
    DnsZone,
    LabServer,
    start_banner_server,
    start_dns,
    start_nginx,
    start_pop3,
    start_smtp,
)

pytestmark = pytest.mark.lab


def client(host: Host, code: str, **spec: Any) -> Any:
    """Run a Python client in ``host``; it reads a JSON spec from argv and prints JSON."""
    return json.loads(host.run([sys.executable, "-c", code, json.dumps(spec, default=str)]))


# -- HTTP and HTTPS (nginx) ---------------------------------------------------

# Reads only the status line and headers: /big's body is never read.
_HTTP_CLIENT = """
import http.client, json, ssl, sys
spec = json.loads(sys.argv[1])

def get(path):
    conn = http.client.HTTPConnection(spec["address"], spec["port"], timeout=5)
    conn.request("GET", path)
    reply = conn.getresponse()
    out = [reply.status, reply.getheader("Location"), reply.getheader("Content-Length")]
    conn.close()
    return out

def tls(port):
    context = ssl.create_default_context(cafile=spec["cafile"])
    conn = http.client.HTTPSConnection(spec["address"], port, timeout=5, context=context)
    try:
        conn.request("GET", "/")
        return {"status": conn.getresponse().status, "version": conn.sock.version()}
    except ssl.SSLCertVerificationError as exc:
        return {"error": exc.verify_message}
    finally:
        conn.close()

print(json.dumps({
    "get": {path: get(path) for path in spec["paths"]},
    "tls": {name: tls(port) for name, port in spec["tls_ports"].items()},
}))
"""


def test_nginx_statuses_and_tls_verification(site: Site) -> None:
    needs("nginx")
    pki = site.tmp / "pki"
    expired = site.ca.issue(
        pki,
        "expired",
        san_ips=[site.address],
        not_before=days_from_now(-30),
        not_after=days_from_now(-1),
    )
    wrong_name = site.ca.issue(pki, "wrong-name", san_dns=["somewhere-else.lab.test"])
    web = start_nginx(
        site.target,
        site.tmp,
        site.cert,
        extra_tls={"expired": (8443, expired), "wrong-name": (9443, wrong_name)},
    )
    result = client(
        site.agent,
        _HTTP_CLIENT,
        address=site.address,
        port=web.ports["http"],
        cafile=site.ca.cert_path,
        paths=["/", "/down", "/moved", "/big", "/nothing-here"],
        tls_ports={name: web.ports[name] for name in ("https", "expired", "wrong-name")},
    )
    got = result["get"]
    assert got["/"][0] == 200
    assert got["/down"][0] == 503
    assert got["/moved"][:2] == [301, f"http://{site.address}/"]
    assert got["/big"] == [200, None, str(web.big_bytes)]
    assert got["/nothing-here"][0] == 404
    # The client read headers only; nginx never got the whole body out.
    assert web.bytes_sent_for("/big") < web.big_bytes
    tls = result["tls"]
    assert tls["https"]["status"] == 200, tls
    assert tls["expired"] == {"error": "certificate has expired"}
    assert "IP address mismatch" in tls["wrong-name"]["error"]


_CONNECT = """
import json, socket, sys
spec = json.loads(sys.argv[1])
try:
    socket.create_connection((spec["address"], spec["port"]), timeout=3).close()
    print(json.dumps("connected"))
except OSError as exc:
    print(json.dumps(type(exc).__name__))
"""


_STARTERS: dict[str, Callable[[Site], LabServer]] = {
    "nginx": lambda site: start_nginx(site.target, site.tmp, site.cert),
    "smtp": lambda site: start_smtp(site.target, site.tmp, site.cert),
    "pop3": lambda site: start_pop3(site.target, site.tmp, site.cert),
    "dns": lambda site: start_dns(site.target, site.tmp),
}


@pytest.mark.parametrize("kind", sorted(_STARTERS))
def test_stopped_server_refuses_then_restarts(site: Site, kind: str) -> None:
    """Service down and back, both ways of stopping: what outage tests will do."""
    needs(kind)
    server = _STARTERS[kind](site)
    ports = sorted(server.ports.values())

    def reach() -> list[str]:
        return [client(site.agent, _CONNECT, address=site.address, port=p) for p in ports]

    assert reach() == ["connected"] * len(ports)
    for graceful in (False, True):
        server.stop(graceful=graceful)
        assert not server.running
        assert reach() == ["ConnectionRefusedError"] * len(ports)
        server.start()
        assert reach() == ["connected"] * len(ports)


# -- SMTP (aiosmtpd) and wrong banners -----------------------------------------

# local_hostname is given: smtplib would otherwise look up this machine's name.
# The host goes to the constructor, the only place smtplib takes the name that
# STARTTLS verifies; connect() is wrapped to keep the banner it reads.
_SMTP_CLIENT = """
import json, smtplib, ssl, sys
spec = json.loads(sys.argv[1])
context = ssl.create_default_context(cafile=spec["cafile"])
me = "agent.lab.test"

class KeepBanner:
    def connect(self, *args, **kwargs):
        self.banner = super().connect(*args, **kwargs)
        return self.banner

class Smtp(KeepBanner, smtplib.SMTP): pass
class Smtps(KeepBanner, smtplib.SMTP_SSL): pass

out = {}
smtp = Smtp(spec["address"], spec["smtp"], local_hostname=me, timeout=5)
out["banner"] = smtp.banner
out["ehlo"] = smtp.ehlo()[0]
out["features"] = sorted(smtp.esmtp_features)
out["mail_before_tls"] = smtp.mail("probe@lab.test")[0]
out["starttls"] = smtp.starttls(context=context)[0]
out["tls_version"] = smtp.sock.version()
out["ehlo_after_tls"] = smtp.ehlo()[0]
out["quit"] = smtp.quit()[0]
smtps = Smtps(spec["address"], spec["smtps"], local_hostname=me, context=context, timeout=5)
out["smtps_banner"] = smtps.banner[0]
out["smtps_quit"] = smtps.quit()[0]
print(json.dumps(out, default=lambda b: b.decode()))
"""


def test_smtp_banner_ehlo_starttls_and_smtps(site: Site) -> None:
    needs("smtp")
    mail = start_smtp(site.target, site.tmp, site.cert)
    out = client(
        site.agent,
        _SMTP_CLIENT,
        address=site.address,
        cafile=site.ca.cert_path,
        smtp=mail.ports["smtp"],
        smtps=mail.ports["smtps"],
    )
    code, text = out["banner"]
    assert code == 220
    assert text.startswith(mail.hostname)
    assert out["ehlo"] == 250
    assert "starttls" in out["features"]
    assert out["mail_before_tls"] == 530  # STARTTLS is required first
    assert out["starttls"] == 220
    assert out["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert (out["ehlo_after_tls"], out["quit"]) == (250, 221)
    assert (out["smtps_banner"], out["smtps_quit"]) == (220, 221)


_FIRST_LINE = """
import json, socket, sys
spec = json.loads(sys.argv[1])
with socket.create_connection((spec["address"], spec["port"]), timeout=5) as sock:
    line = sock.makefile("rb").readline()
print(json.dumps(line.decode()))
"""


@pytest.mark.parametrize(
    ("port", "banner"),
    [(25, b"554 go away\r\n"), (110, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")],
)
def test_banner_server_greets_with_the_wrong_protocol(site: Site, port: int, banner: bytes) -> None:
    liar = start_banner_server(site.target, site.tmp, port, banner)
    line = client(site.agent, _FIRST_LINE, address=site.address, port=liar.ports["banner"])
    assert line.encode() == banner


# -- POP3 (dovecot) ------------------------------------------------------------

_POP3_CLIENT = """
import json, poplib, ssl, sys
spec = json.loads(sys.argv[1])
context = ssl.create_default_context(cafile=spec["cafile"])
out = {}
pop = poplib.POP3(spec["address"], spec["pop3"], timeout=5)
out["banner"] = pop.getwelcome()
out["capa"] = sorted(pop.capa())
out["stls"] = pop.stls(context)
out["tls_version"] = pop.sock.version()
out["quit"] = pop.quit()
pops = poplib.POP3_SSL(spec["address"], spec["pop3s"], context=context, timeout=5)
out["pop3s_banner"] = pops.getwelcome()
out["pop3s_quit"] = pops.quit()
print(json.dumps(out, default=lambda b: b.decode()))
"""


def test_pop3_banner_stls_and_pop3s(site: Site) -> None:
    needs("pop3")
    pop = start_pop3(site.target, site.tmp, site.cert)
    out = client(
        site.agent,
        _POP3_CLIENT,
        address=site.address,
        cafile=site.ca.cert_path,
        pop3=pop.ports["pop3"],
        pop3s=pop.ports["pop3s"],
    )
    assert out["banner"] == f"+OK {pop.greeting}"
    assert "STLS" in out["capa"]
    assert out["stls"].startswith("+OK")
    assert out["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert out["quit"].startswith("+OK")
    assert out["pop3s_banner"] == f"+OK {pop.greeting}"
    assert out["pop3s_quit"].startswith("+OK")


# -- DNS (unbound) ---------------------------------------------------------------

# Queries carry no EDNS, as a minimal resolver's do: answers over 512 bytes truncate.
_DNS_CLIENT = """
import json, sys
import dns.flags, dns.message, dns.query, dns.rcode
spec = json.loads(sys.argv[1])

def ask(name, rdtype, tcp=False):
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    reply = send(query, spec["address"], port=spec["port"], timeout=3)
    return {
        "rcode": dns.rcode.to_text(reply.rcode()),
        "tc": bool(reply.flags & dns.flags.TC),
        "aa": bool(reply.flags & dns.flags.AA),
        "answer": sorted(rd.to_text() for rrset in reply.answer for rd in rrset),
        "authority": sorted(rrset.rdtype.name for rrset in reply.authority),
    }

print(json.dumps({key: ask(*question) for key, question in spec["questions"].items()}))
"""


def test_dns_answers_nxdomain_servfail_and_truncation(site: Site) -> None:
    needs("dns")
    pytest.importorskip("dns.query", reason="the DNS client needs dnspython")
    zone = DnsZone()
    dns = start_dns(site.target, site.tmp, zone=zone)
    questions = {
        "a": [zone.a_name, "A"],
        "aaaa": [zone.a_name, "AAAA"],
        "mx": [zone.zone, "MX"],
        "soa": [zone.zone, "SOA"],
        "missing": [zone.missing_name, "A"],
        "servfail": [zone.servfail_name, "A"],
        "big_udp": [zone.big_name, "TXT"],
        "big_tcp": [zone.big_name, "TXT", True],
    }
    out = client(
        site.agent, _DNS_CLIENT, address=site.address, port=dns.ports["dns"], questions=questions
    )
    assert out["a"]["answer"] == [zone.a_address]
    assert out["a"]["aa"]
    assert out["aaaa"]["answer"] == [zone.aaaa_address]
    assert out["mx"]["answer"] == [f"{zone.mx_preference} {zone.mx_exchange}."]
    (soa,) = out["soa"]["answer"]
    assert soa.split()[:3] == [f"ns.{zone.zone}.", f"hostmaster.{zone.zone}.", str(zone.soa_serial)]
    assert (out["missing"]["rcode"], out["missing"]["authority"]) == ("NXDOMAIN", ["SOA"])
    assert out["servfail"]["rcode"] == "SERVFAIL"
    assert (out["big_udp"]["rcode"], out["big_udp"]["tc"]) == ("NOERROR", True)
    assert len(out["big_udp"]["answer"]) < zone.big_records
    assert not out["big_tcp"]["tc"]
    assert len(out["big_tcp"]["answer"]) == zone.big_records
