"""Real servers inside lab hosts, for testing protocol probes against the real thing.

    ca = make_ca(tmp_path / "pki")
    cert = ca.issue(tmp_path / "pki", "target", san_ips=[target.address_toward(r1)])
    web = start_nginx(target, tmp_path, cert)          # HTTP 80, HTTPS 443
    app = start_app_server(target, tmp_path)           # "shopapp" on 127.0.0.1:8080 ...
    front = start_nginx(target, tmp_path, None, upstream="127.0.0.1:8080")  # ... behind nginx
    mail = start_smtp(target, tmp_path, cert)          # SMTP 25 (STARTTLS), SMTPS 465
    pop = start_pop3(target, tmp_path, cert)           # POP3 110 (STLS), POP3S 995
    dns = start_dns(target, tmp_path)                  # DNS 53, UDP and TCP
    liar = start_banner_server(target, tmp_path, 2525, b"554 go away\\r\\n")
    web.stop()                                         # the service goes down...
    web.start()                                        # ...and comes back

Each ``start_*`` writes its configuration under ``directory / name``, starts the
server in the host with ``Host.spawn`` (so ``Lab.close`` stops it even when a
test fails), and returns once every port listens. Servers bind only the host's
lab address and read nothing from /etc: nginx, dovecot and unbound run from a
private config with their pid files, sockets, state and logs in the temp dir.
Every server also runs under ``timeout``, so none outlives ``MAX_LIFETIME`` even
if the test process dies before its teardown.

Choices: nginx for HTTP(S); aiosmtpd for SMTP, because installing postfix
replaces the machine's mail transport agent; dovecot for POP3; unbound for DNS,
because it answers SERVFAIL when a zone's only server is unreachable, which
dnsmasq turns into REFUSED. All of it needs root, as the lab does.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.lab.netlab import Host, LabError
from tests.lab.pki import CertPair

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Longer than pytest's per-test timeout (300 s): a server outlives no test run.
MAX_LIFETIME = 900
_POLL_EVERY = 0.05
# Debian installs dovecot's POP3 processes here (package dovecot-pop3d).
_DOVECOT_POP3_LOGIN = Path("/usr/lib/dovecot/pop3-login")
# An address in the lab's pool that no link gets (links count up from
# 198.18.0.0/24); the DNS host routes it as unreachable, so queries to it fail
# on the spot and no packet leaves the namespace.
DEAD_UPSTREAM = "198.18.255.53"


# -- availability -------------------------------------------------------------

_NEEDS: dict[str, tuple[str, str]] = {  # kind -> (command, Debian package)
    "nginx": ("nginx", "nginx"),
    "pop3": ("dovecot", "dovecot-pop3d"),
    "dns": ("unbound", "unbound"),
}


def _command(name: str) -> str | None:
    """Full path of a command, looking in the sbin directories too (daemons live there)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def unavailable_reason(*kinds: str) -> str | None:
    """Why servers of these kinds ("nginx", "smtp", "pop3", "dns") cannot run, or None."""
    for kind in kinds:
        if kind == "smtp":
            if importlib.util.find_spec("aiosmtpd") is None:
                return "the SMTP lab server needs the aiosmtpd package (a dev dependency)"
            continue
        command, package = _NEEDS[kind]
        missing = _command(command) is None
        if kind == "pop3" and not _DOVECOT_POP3_LOGIN.exists():
            missing = True
        if missing:
            return f"the {kind} lab server needs Debian's {package} (scripts/setup --dev)"
    return None


def _require(kind: str) -> None:
    """Raise a LabError saying what to install if ``kind`` cannot run here."""
    reason = unavailable_reason(kind)
    if reason is not None:
        raise LabError(reason)


def _server_command(kind: str) -> str:
    """Full path of the daemon serving ``kind`` (nginx, dovecot, unbound), checked first."""
    _require(kind)
    return _command(_NEEDS[kind][0]) or _NEEDS[kind][0]


# -- the common part ----------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class LabServer:
    """A server process tree in a lab host: where to reach it, how to stop and restart it.

    ``ports`` names every TCP port (``{"http": 80, "https": 443}``); ports in
    ``udp_ports`` also listen on UDP. ``log_path`` collects the server's own
    output, which is where to look when a test against it fails; after a
    restart the earlier runs' output is in ``<log_path>.1``, ``.2`` ...
    """

    kind: str
    host: Host
    address: str
    ports: dict[str, int]
    directory: Path
    argv: list[str]
    udp_ports: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.kind}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start (or restart after ``stop``) and return once every port listens."""
        if self.running:
            raise LabError(f"{self.kind} in {self.host.name} is already running")
        if self.starts and self.log_path.exists():  # Host.spawn truncates: keep the old log
            self.log_path.replace(self.log_path.with_name(f"{self.log_path.name}.{self.starts}"))
        self.starts += 1
        # --foreground: timeout stays in the process group ``stop`` signals (without it,
        # timeout makes a group of its own, which ``stop`` misses when timeout is not
        # the spawned process itself, as in a host whose commands run under nsenter).
        self.process = self.host.spawn(
            ["timeout", "--foreground", "--kill-after=5", str(MAX_LIFETIME), *self.argv],
            log_path=self.log_path,
        )
        wanted = self._wanted_sockets()
        self._poll(f"listening on {sorted(wanted)}", lambda: wanted <= self._sockets(), timeout)

    def stop(self, graceful: bool = True, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the whole process tree now, as an outage would; its ports then refuse.

        ``graceful`` sends SIGTERM (servers log their shutdown); otherwise, or if
        the server is not gone in ``timeout`` seconds, SIGKILL. Either way the
        server can be started again at once.
        """
        process = self.process
        if process is None:
            return
        if graceful:
            _signal_group(process, signal.SIGTERM)
        else:
            _kill_under_leader(process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
        _signal_group(process, signal.SIGKILL)  # whatever is left, leader included
        process.wait(timeout=timeout)
        wanted = self._wanted_sockets()
        self._poll("closed", lambda: not wanted & self._sockets(), timeout, alive=False)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return f"({self.log_path} missing)"
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _wanted_sockets(self) -> set[tuple[str, int]]:
        return {("tcp", p) for p in self.ports.values()} | {("udp", p) for p in self.udp_ports}

    def _sockets(self) -> set[tuple[str, int]]:
        """(protocol, port) of every socket listening on our address in the host."""
        found = set()
        for line in self.host.run(["ss", "-Hlntu"], timeout=5).splitlines():
            fields = line.split()
            if len(fields) < 5:
                continue
            address, _, port = fields[4].rpartition(":")
            if address in (self.address, "0.0.0.0", "*") and port.isdigit():
                found.add((fields[0], int(port)))
        return found

    def _poll(
        self, what: str, done: Callable[[], bool], timeout: float, alive: bool = True
    ) -> None:
        """Wait until ``done()``; fail at once if the server died while it should live."""
        deadline = time.monotonic() + timeout
        while not done():
            if alive and not self.running:
                code = self.process.returncode if self.process else None
                raise LabError(
                    f"{self.kind} in {self.host.name} exited ({code}) before {what}:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise LabError(
                    f"{self.kind} in {self.host.name} not {what} after {timeout}s:\n"
                    + self.log_tail()
                )
            time.sleep(_POLL_EVERY)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the process and everything it forked (``Host.spawn`` starts a new session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _kill_under_leader(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server's processes but not the ``timeout`` leading their group.

    ``timeout`` then reaps the server and exits. Killed together, the server
    would be orphaned to PID 1 and stay a zombie until reaped (1.7 s on some
    machines), still "alive" to its own pid-file check: dovecot refuses to
    start again while its old master's PID exists.
    """
    for pid in _group_members(process.pid):
        if pid != process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _group_members(pgid: int) -> list[int]:
    """PIDs of the processes in process group ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # After the command name in parentheses: state, ppid, pgrp, ...
        fields = stat.rpartition(")")[2].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            members.append(int(entry.name))
    return members


def _host_address(host: Host, address: str | None) -> str:
    """The address to serve on: the one given, else the host's only lab address."""
    if address is not None:
        return address
    addresses = sorted(set(host.addresses.values()))
    if len(addresses) != 1:
        raise LabError(f"{host.name} has addresses {addresses}: pass address=")
    return addresses[0]


def _server_dir(directory: Path, name: str) -> Path:
    """A directory of the server's own, 0700: its config and logs stay private."""
    path = directory / name
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- nginx: HTTP and HTTPS ----------------------------------------------------

BIG_BODY_BYTES = 32 * 1024 * 1024

_NGINX_ROOT = 'return 200 "slawatch lab ok\\n";'
# ``/`` handed to an application behind nginx (``upstream=``): when the
# application is gone, nginx answers 502 at once, as a real front end does.
_NGINX_PROXY_ROOT = "proxy_pass http://{upstream}; proxy_connect_timeout 1s; proxy_read_timeout 5s;"
# The same paths on every server block, so a test can ask any port for any case.
_NGINX_LOCATIONS = """
        location = / {{ {root} }}
        location = /down {{ return 503; }}
        location = /moved {{ return 301 /; }}
        location = /big {{ alias "{big}"; }}
        location / {{ return 404; }}
"""


@dataclass(eq=False, kw_only=True)
class NginxServer(LabServer):
    """nginx serving ``/`` 200 (or the ``upstream`` application's answer), ``/down`` 503,
    ``/moved`` 301 to ``/``, ``/big`` (a large body of ``big_bytes`` zero bytes) and 404
    elsewhere, on every port.

    Ports: ``http`` and ``https`` (without TLS only ``http``), plus one per ``extra_tls``
    name. ``access_log``
    records the bytes each request sent, which shows whether a probe read a body.
    """

    big_bytes: int
    access_log: Path

    def url(self, path: str = "/", port: str = "http") -> str:
        """URL of ``path`` on the named port (scheme http for ``http``, else https)."""
        scheme = "http" if port == "http" else "https"
        return f"{scheme}://{self.address}:{self.ports[port]}{path}"

    def bytes_sent_for(self, path: str, method: str = "GET", timeout: float = 5.0) -> int:
        """Body bytes nginx logged for the last ``method path`` (logged once the client left)."""
        pattern = re.compile(rf'"{method} {re.escape(path)} HTTP/1\.\d" \d+ (\d+)')
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.access_log.exists():
                found = pattern.findall(self.access_log.read_text())
                if found:
                    return int(found[-1])
            time.sleep(_POLL_EVERY)
        raise AssertionError(f"no {method} {path} in {self.access_log}:\n{self.log_tail()}")


def start_nginx(
    host: Host,
    directory: Path,
    tls: CertPair | None,
    *,
    address: str | None = None,
    http_port: int = 80,
    https_port: int = 443,
    extra_tls: Mapping[str, tuple[int, CertPair]] | None = None,
    big_bytes: int = BIG_BODY_BYTES,
    upstream: str | None = None,
    name: str = "nginx",
) -> NginxServer:
    """Start nginx in ``host``; ``extra_tls`` adds HTTPS ports with their own certificates.

    ``tls=None`` serves plain HTTP only. ``upstream`` (``"127.0.0.1:8080"``) makes
    ``/`` a reverse proxy to that application instead of a fixed 200.

    For instance ``extra_tls={"expired": (8443, expired), "wrong-name": (9443, wrong)}``
    gives ports named ``expired`` and ``wrong-name`` whose certificates a verifying
    client must reject. nginx runs with ``-p``/``-c`` on a private config and
    ``-e stderr``, so it opens nothing under /etc/nginx or /var/log/nginx; its
    workers run as root because the temp dir is private to root.
    """
    nginx = _server_command("nginx")
    where = _server_dir(directory, name)
    address = _host_address(host, address)
    big = where / "big.bin"
    with big.open("wb") as out:
        out.truncate(big_bytes)  # sparse: instant to make, served as zeros
    for temp in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (where / "temp" / temp).mkdir(parents=True, exist_ok=True)
    tls_ports = {**({"https": (https_port, tls)} if tls else {}), **(extra_tls or {})}
    root = _NGINX_PROXY_ROOT.format(upstream=upstream) if upstream else _NGINX_ROOT
    conf = _write(where / "nginx.conf", _nginx_conf(where, address, http_port, tls_ports, root))
    ports = {"http": http_port} | {port_name: port for port_name, (port, _) in tls_ports.items()}
    server = NginxServer(
        kind="nginx",
        host=host,
        address=address,
        ports=ports,
        directory=where,
        argv=[nginx, "-e", "stderr", "-p", f"{where}/", "-c", str(conf), "-g", "daemon off;"],
        big_bytes=big_bytes,
        access_log=where / "access.log",
    )
    server.start()
    return server


def _nginx_conf(
    where: Path,
    address: str,
    http_port: int,
    tls_ports: Mapping[str, tuple[int, CertPair]],
    root: str = _NGINX_ROOT,
) -> str:
    locations = _NGINX_LOCATIONS.format(big=where / "big.bin", root=root)
    temp = where / "temp"
    servers = [_nginx_server(f"{address}:{http_port}", locations)]
    servers += [
        _nginx_server(f"{address}:{port} ssl", locations, tls) for port, tls in tls_ports.values()
    ]
    return "\n".join(
        [
            "user root root;",
            "worker_processes 1;",
            f'pid "{where}/nginx.pid";',
            "error_log stderr notice;",
            "events { worker_connections 64; }",
            "http {",
            "    default_type text/plain;",
            f'    access_log "{where}/access.log";',
            f'    client_body_temp_path "{temp}/client_body";',
            f'    proxy_temp_path "{temp}/proxy";',
            f'    fastcgi_temp_path "{temp}/fastcgi";',
            f'    uwsgi_temp_path "{temp}/uwsgi";',
            f'    scgi_temp_path "{temp}/scgi";',
            *servers,
            "}",
            "",
        ]
    )


def _nginx_server(listen: str, locations: str, tls: CertPair | None = None) -> str:
    """One ``server`` block: where it listens, its certificate if any, the paths."""
    lines = ["    server {", f"        listen {listen};"]
    if tls is not None:
        lines.append(f'        ssl_certificate "{tls.cert_path}";')
        lines.append(f'        ssl_certificate_key "{tls.key_path}";')
    return "\n".join(lines) + locations + "    }"


# -- a customer's application: a small HTTP server with a name of its own ----

# Run by the lab host's Python. It renames itself (prctl PR_SET_NAME, what ps,
# top and psutil show as the process name), so a host check can watch for it
# by name, as it would for a customer's real application binary.
_APP_SERVER = """
import ctypes, http.server, sys
name, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # 15: PR_SET_NAME
BODY = f"{name} ok\\n".encode()

class Handler(http.server.BaseHTTPRequestHandler):
    def _head(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()

    def do_HEAD(self):
        self._head()

    def do_GET(self):
        self._head()
        self.wfile.write(BODY)

    def log_message(self, format, *args):
        sys.stderr.write(format % args + "\\n")
        sys.stderr.flush()

http.server.ThreadingHTTPServer((address, port), Handler).serve_forever()
"""


@dataclass(eq=False, kw_only=True)
class AppServer(LabServer):
    """A customer's application (HTTP, ``200 <name> ok`` on every GET and HEAD) whose
    process is called ``process_name``; usually behind nginx (``start_nginx(upstream=)``)."""

    process_name: str


def start_app_server(
    host: Host,
    directory: Path,
    *,
    process_name: str = "shopapp",
    address: str = "127.0.0.1",
    port: int = 8080,
    name: str = "app",
) -> AppServer:
    """Start the application in ``host``, listening on ``address:port`` (loopback by
    default: only a front end in the same host reaches it)."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", process_name):
        raise LabError(f"process name {process_name!r}: 1-15 letters, digits, _.-")
    where = _server_dir(directory, name)
    script = _write(where / "app_server.py", _APP_SERVER)
    server = AppServer(
        kind="app",
        host=host,
        address=address,
        ports={"http": port},
        directory=where,
        argv=[sys.executable, str(script), process_name, address, str(port)],
        process_name=process_name,
    )
    server.start()
    return server


# -- SMTP: aiosmtpd -----------------------------------------------------------

# Run by the lab host's Python. A Sink handler accepts and discards mail;
# require_starttls makes MAIL before STARTTLS fail, as a careful server does.
_SMTP_SERVER = """
import asyncio, logging, signal, ssl, sys
from aiosmtpd.handlers import Sink
from aiosmtpd.smtp import SMTP

async def main(address, port, smtps_port, hostname, cert, key):
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()

    def session(starttls):
        return SMTP(Sink(), hostname=hostname, ident="slawatch lab ESMTP",
                    tls_context=tls if starttls else None, require_starttls=starttls)

    servers = [await loop.create_server(lambda: session(True), address, port)]
    if smtps_port:
        servers.append(await loop.create_server(
            lambda: session(False), address, smtps_port, ssl=tls))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        server.close()

a = sys.argv[1:]
asyncio.run(main(a[0], int(a[1]), int(a[2]), a[3], a[4], a[5]))
"""


@dataclass(eq=False, kw_only=True)
class SmtpServer(LabServer):
    """aiosmtpd: ``smtp`` offers STARTTLS (required before MAIL), ``smtps`` is TLS from
    the start. The banner is ``220 <hostname> slawatch lab ESMTP``."""

    hostname: str


def start_smtp(
    host: Host,
    directory: Path,
    tls: CertPair,
    *,
    address: str | None = None,
    port: int = 25,
    smtps_port: int | None = 465,
    hostname: str = "mail.lab.test",
    name: str = "smtp",
) -> SmtpServer:
    """Start an SMTP server (aiosmtpd, in the host's Python) answering as ``hostname``.

    The hostname is given, not looked up: aiosmtpd's default would resolve the
    machine's name, and DNS from inside a lab host must go nowhere.
    """
    _require("smtp")
    where = _server_dir(directory, name)
    address = _host_address(host, address)
    script = _write(where / "smtp_server.py", _SMTP_SERVER)
    ports = {"smtp": port} | ({"smtps": smtps_port} if smtps_port else {})
    cert, key = str(tls.cert_path), str(tls.key_path)
    server = SmtpServer(
        kind="smtp",
        host=host,
        address=address,
        ports=ports,
        directory=where,
        argv=[
            sys.executable,
            str(script),
            address,
            str(port),
            str(smtps_port or 0),
            hostname,
            cert,
            key,
        ],
        hostname=hostname,
    )
    server.start()
    return server


# -- a wrong banner -----------------------------------------------------------

# Greets every connection with fixed bytes, waits a little for the client to
# speak (or leave), then closes: a service speaking the wrong protocol.
_BANNER_SERVER = """
import asyncio, signal, sys

async def main(address, port, banner_path, hold):
    banner = open(banner_path, "rb").read()

    async def greet(reader, writer):
        writer.write(banner)
        try:
            await writer.drain()
            await asyncio.wait_for(reader.read(4096), hold)
        except (OSError, asyncio.TimeoutError):
            pass
        writer.close()

    server = await asyncio.start_server(greet, address, port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()

a = sys.argv[1:]
asyncio.run(main(a[0], int(a[1]), a[2], float(a[3])))
"""


@dataclass(eq=False, kw_only=True)
class BannerServer(LabServer):
    """Sends ``banner`` on connect, whatever the client expects (port name ``banner``)."""

    banner: bytes


def start_banner_server(
    host: Host,
    directory: Path,
    port: int,
    banner: bytes,
    *,
    address: str | None = None,
    hold: float = 5.0,
    name: str = "banner",
) -> BannerServer:
    """Serve a fixed greeting such as ``b"554 go away\\r\\n"`` or ``b"SSH-2.0-OpenSSH_9.2\\r\\n"``.

    After the banner the server waits up to ``hold`` seconds for the client's
    first line, then closes, so a probe sees the greeting and then an end of stream.
    """
    where = _server_dir(directory, name)
    address = _host_address(host, address)
    script = _write(where / "banner_server.py", _BANNER_SERVER)
    (where / "banner.bin").write_bytes(banner)
    server = BannerServer(
        kind="banner",
        host=host,
        address=address,
        ports={"banner": port},
        directory=where,
        argv=[
            sys.executable,
            str(script),
            address,
            str(port),
            str(where / "banner.bin"),
            str(hold),
        ],
        banner=banner,
    )
    server.start()
    return server


# -- POP3: dovecot ------------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class Pop3Server(LabServer):
    """dovecot: ``pop3`` offers STLS, ``pop3s`` is TLS from the start; greets ``+OK
    <greeting>``. It has no mailboxes: logins are refused, banners and TLS work."""

    greeting: str


def start_pop3(
    host: Host,
    directory: Path,
    tls: CertPair,
    *,
    address: str | None = None,
    port: int = 110,
    pop3s_port: int | None = 995,
    greeting: str = "slawatch lab POP3 ready.",
    name: str = "pop3",
) -> Pop3Server:
    """Start dovecot (``dovecot -F -c``) with a private config: base_dir, state_dir and
    the log all live in the temp dir, nothing is read from /etc/dovecot.

    dovecot refuses to run its login processes as root, so they run as the
    ``dovenull`` user Debian's dovecot-core creates, chrooted into base_dir; its
    other processes run as root, because the temp dir is root's alone.
    """
    dovecot = _server_command("pop3")
    where = _server_dir(directory, name)
    address = _host_address(host, address)
    conf = _write(
        where / "dovecot.conf",
        _dovecot_conf(where, address, tls, port, pop3s_port, greeting),
    )
    ports = {"pop3": port} | ({"pop3s": pop3s_port} if pop3s_port else {})
    server = Pop3Server(
        kind="pop3",
        host=host,
        address=address,
        ports=ports,
        directory=where,
        argv=[dovecot, "-F", "-c", str(conf)],
        greeting=greeting,
    )
    server.start()
    return server


def _dovecot_conf(
    where: Path, address: str, tls: CertPair, port: int, pop3s_port: int | None, greeting: str
) -> str:
    pop3s = (
        f"  inet_listener pop3s {{\n    port = {pop3s_port}\n    ssl = yes\n  }}\n"
        if pop3s_port
        else ""
    )
    # dovecot's auth will not start without a passdb and a userdb; these accept
    # only a random password nobody knows.
    return f"""\
base_dir = {where}/run
state_dir = {where}/state
instance_name = slawatch-lab-{where.name}
log_path = /dev/stderr
protocols = pop3
listen = {address}
ssl = yes
ssl_cert = <{tls.cert_path}
ssl_key = <{tls.key_path}
login_greeting = {greeting}
default_internal_user = root
default_internal_group = root
default_login_user = dovenull
passdb {{
  driver = static
  args = password={secrets.token_hex(16)}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {port}
  }}
{pop3s}}}
"""


# -- DNS: unbound -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DnsZone:
    """What the lab DNS server answers; tests assert against these same fields.

    ``zone`` is served from local data (authoritative answers, NXDOMAIN with the
    SOA for names it lacks). ``servfail_name`` lies in ``servfail_zone``, whose
    only name server is ``DEAD_UPSTREAM``: the answer is SERVFAIL. ``big_name``
    has ``big_records`` TXT records of 200 bytes each, far over 512 bytes (and
    over EDNS's 1232), so a UDP answer comes back truncated and a client must
    retry over TCP. ``extra_records`` are more zone-file lines (without single
    quotes), e.g. ``"host.lab.test. 60 IN A 198.51.100.9"``.
    """

    zone: str = "lab.test"
    a_name: str = "www.lab.test"
    a_address: str = "198.51.100.7"  # TEST-NET-2: only ever an answer, never dialled
    aaaa_address: str = "2001:db8::7"
    mx_exchange: str = "mail.lab.test"
    mx_preference: int = 10
    soa_serial: int = 2024010101
    missing_name: str = "nope.lab.test"
    servfail_zone: str = "broken.test"
    servfail_name: str = "www.broken.test"
    big_name: str = "big.lab.test"
    big_records: int = 30
    extra_records: tuple[str, ...] = ()

    def records(self, ns_address: str) -> list[str]:
        """The zone's records as zone-file lines (what unbound's local-data takes)."""
        z = self.zone
        return [
            f"{z}. 3600 IN SOA ns.{z}. hostmaster.{z}. {self.soa_serial} 1200 120 604800 60",
            f"{z}. 3600 IN NS ns.{z}.",
            f"ns.{z}. 60 IN A {ns_address}",
            f"{self.a_name}. 60 IN A {self.a_address}",
            f"{self.a_name}. 60 IN AAAA {self.aaaa_address}",
            f"{z}. 60 IN MX {self.mx_preference} {self.mx_exchange}.",
            f"{self.mx_exchange}. 60 IN A {self.a_address}",
            *(f'{self.big_name}. 60 IN TXT "{i:03d}-{"x" * 196}"' for i in range(self.big_records)),
            *self.extra_records,
        ]


@dataclass(eq=False, kw_only=True)
class DnsServer(LabServer):
    """unbound answering for ``zone`` on ``dns`` (port, UDP and TCP)."""

    zone: DnsZone


def start_dns(
    host: Host,
    directory: Path,
    *,
    zone: DnsZone | None = None,
    address: str | None = None,
    port: int = 53,
    name: str = "dns",
) -> DnsServer:
    """Start unbound (``unbound -d -c``) serving ``zone`` from a private config.

    Every name outside the zone is sent to ``DEAD_UPSTREAM``, which this host
    routes as unreachable: unbound never asks the real root servers, and the
    SERVFAIL case takes a millisecond, not a timeout. No validator (no trust
    anchor to fetch), no remote control, no chroot, no user switch, no syslog.
    """
    unbound = _server_command("dns")
    zone = zone or DnsZone()
    where = _server_dir(directory, name)
    address = _host_address(host, address)
    host.run(["ip", "route", "replace", "unreachable", f"{DEAD_UPSTREAM}/32"])
    conf = _write(where / "unbound.conf", _unbound_conf(where, address, port, zone))
    server = DnsServer(
        kind="dns",
        host=host,
        address=address,
        ports={"dns": port},
        udp_ports=(port,),
        directory=where,
        argv=[unbound, "-d", "-c", str(conf)],
        zone=zone,
    )
    server.start()
    return server


def _unbound_conf(where: Path, address: str, port: int, zone: DnsZone) -> str:
    data = "\n".join(f"    local-data: '{record}'" for record in zone.records(address))
    # "test." is one of unbound's built-in empty zones (RFC 6761); nodefault
    # lets the SERVFAIL zone under it reach its stub instead of NXDOMAIN.
    return f"""\
server:
    interface: {address}
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 198.18.0.0/15 allow
    username: ""
    chroot: ""
    directory: "{where}"
    pidfile: "{where}/unbound.pid"
    logfile: ""
    use-syslog: no
    log-time-ascii: yes
    log-queries: yes
    log-replies: yes
    verbosity: 1
    do-daemonize: no
    num-threads: 1
    outgoing-range: 64
    module-config: "iterator"
    root-hints: ""
    local-zone: "test." nodefault
    local-zone: "{zone.zone}." static
{data}

remote-control:
    control-enable: no

stub-zone:
    name: "{zone.servfail_zone}."
    stub-addr: {DEAD_UPSTREAM}

stub-zone:
    name: "."
    stub-addr: {DEAD_UPSTREAM}
"""
