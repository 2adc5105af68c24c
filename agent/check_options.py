"""Per-kind options of a check: the ``http:``, ``smtp:``, ``pop3:``, ``dns:`` and ``host:`` blocks.

Plain data, validated here, so that loading a config never imports a probe's
libraries; docs/checks.md documents every option with an example.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from agent.config_fields import Fields

STATUS_CLASS = re.compile(r"^[1-5](xx|\d\d)$")
DNS_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "CAA")
DNS_RCODES = ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "FORMERR", "NOTIMP")


class TlsMode(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"  # SMTP STARTTLS, POP3 STLS
    IMPLICIT = "implicit"  # SMTPS, POP3S


@dataclass(frozen=True, slots=True)
class TlsOptions:
    verify: bool = True
    # A CA bundle to verify against instead of the system's (a private CA).
    ca_file: str | None = None
    # The name to verify the certificate against, if not the target's host.
    server_name: str | None = None


@dataclass(frozen=True, slots=True)
class HttpOptions:
    method: str = "HEAD"
    # Status codes that count as success: classes like 2xx or exact codes like 301.
    expect_status: tuple[str, ...] = ("2xx", "3xx")
    host_header: str | None = None
    follow_redirects: bool = False
    tls: TlsOptions = field(default_factory=TlsOptions)


@dataclass(frozen=True, slots=True)
class MailOptions:
    """SMTP and POP3."""

    tls_mode: TlsMode = TlsMode.NONE
    ehlo_name: str = "slawatch.invalid"
    tls: TlsOptions = field(default_factory=TlsOptions)


@dataclass(frozen=True, slots=True)
class DnsOptions:
    name: str = ""
    record_type: str = "A"
    # If set, the answer must contain each of these (text form, e.g. an address).
    expect: tuple[str, ...] = ()
    expect_rcode: str = "NOERROR"
    # Query over TCP from the start instead of UDP with fallback on truncation.
    tcp: bool = False


@dataclass(frozen=True, slots=True)
class HostOptions:
    mounts: tuple[str, ...] = ("/",)
    disk_full_ratio: float = 0.95
    inodes_full_ratio: float = 0.95
    memory_full_ratio: float = 0.98
    # Process names that must be running (e.g. nginx, postfix, dovecot).
    processes: tuple[str, ...] = ()
    # Interfaces to report (default: all but loopback).
    interfaces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EgressLossOptions:
    """The egress-loss check: the threshold, and the hops probed beside the egress hop."""

    threshold: float = 0.01
    # The border router: probed with the same echoes, for the report.
    border: str | None = None
    # An address beyond the egress hop: if it loses nothing while the egress hop
    # loses replies, the hop is rate limiting its ICMP replies, not losing packets.
    beyond: str | None = None
    # While undecided, double the echoes of the next window (up to max_packets).
    adaptive: bool = True
    max_packets: int = 20_000


@dataclass(frozen=True, slots=True)
class PathOptions:
    """The path check: how each trace is made (``slawatch-agent path``)."""

    probe: str = "icmp"
    rounds: int = 3
    max_ttl: int = 30
    border: tuple[str, ...] = ()
    provider_prefixes: tuple[str, ...] = ()


CheckOptions = (
    HttpOptions | MailOptions | DnsOptions | HostOptions | EgressLossOptions | PathOptions
)


def read_tls(data: object, path: str, problems: list[str]) -> TlsOptions:
    f = Fields(data, path, {"verify", "ca_file", "server_name"}, problems)
    ca_file = f.optional_text("ca_file", max_length=4096)
    if ca_file is not None and not os.access(ca_file, os.R_OK):
        f.problem("ca_file", f"{ca_file!r} is not a readable file")
    return TlsOptions(
        verify=f.boolean("verify", True),
        ca_file=ca_file,
        server_name=f.optional_text("server_name"),
    )


def read_http(data: object, path: str, problems: list[str]) -> HttpOptions:
    f = Fields(data, path, {"method", "expect_status", "host_header", "follow_redirects",
                            "tls"}, problems)  # fmt: skip
    expect = f.text_list("expect_status", ("2xx", "3xx"), max_items=20)
    for status in expect:
        if not STATUS_CLASS.match(status):
            f.problem("expect_status", f"{status!r} is neither a class like 2xx nor a code")
    return HttpOptions(
        method=f.choice("method", "HEAD", ("HEAD", "GET")),
        expect_status=expect,
        host_header=f.optional_text("host_header"),
        follow_redirects=f.boolean("follow_redirects", False),
        tls=read_tls(f.raw("tls"), f.at("tls"), problems),
    )


def read_mail(data: object, path: str, problems: list[str]) -> MailOptions:
    f = Fields(data, path, {"tls_mode", "ehlo_name", "tls"}, problems)
    return MailOptions(
        tls_mode=TlsMode(f.choice("tls_mode", "none", tuple(TlsMode))),
        ehlo_name=f.text("ehlo_name", "slawatch.invalid"),
        tls=read_tls(f.raw("tls"), f.at("tls"), problems),
    )


def read_dns(data: object, path: str, problems: list[str]) -> DnsOptions:
    f = Fields(data, path, {"name", "type", "expect", "expect_rcode", "tcp"}, problems)
    return DnsOptions(
        name=f.text("name"),
        record_type=f.choice("type", "A", DNS_TYPES),
        expect=f.text_list("expect", (), max_items=50),
        expect_rcode=f.choice("expect_rcode", "NOERROR", DNS_RCODES),
        tcp=f.boolean("tcp", False),
    )


def read_egress_loss(data: object, path: str, problems: list[str]) -> EgressLossOptions:
    f = Fields(data, path, {"threshold", "border", "beyond", "adaptive", "max_packets"}, problems)
    options = EgressLossOptions(
        threshold=f.number("threshold", 0.01, 0.0, 0.5),
        border=f.optional_text("border"),
        beyond=f.optional_text("beyond"),
        adaptive=f.boolean("adaptive", True),
        max_packets=f.integer("max_packets", 20_000, 1, 1_000_000),
    )
    for key in ("border", "beyond"):
        address = getattr(options, key)
        if address is not None and not _is_ip(address):
            f.problem(key, f"{address!r} is not an IPv4 or IPv6 address")
    return options


def read_path(data: object, path: str, problems: list[str]) -> PathOptions:
    f = Fields(data, path, {"probe", "rounds", "max_ttl", "border", "provider_prefixes"},
               problems)  # fmt: skip
    options = PathOptions(
        probe=f.choice("probe", "icmp", ("icmp", "udp", "tcp")),
        rounds=f.integer("rounds", 3, 1, 100),
        max_ttl=f.integer("max_ttl", 30, 1, 64),
        border=f.text_list("border", (), max_items=16),
        provider_prefixes=f.text_list("provider_prefixes", (), max_items=64),
    )
    for index, address in enumerate(options.border):
        if not _is_ip(address):
            f.problem(f"border[{index}]", f"{address!r} is not an IP address")
    for index, prefix in enumerate(options.provider_prefixes):
        try:
            ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            f.problem(f"provider_prefixes[{index}]", f"{prefix!r} is not a CIDR prefix")
    return options


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def read_host(data: object, path: str, problems: list[str]) -> HostOptions:
    f = Fields(data, path, {"mounts", "disk_full_ratio", "inodes_full_ratio",
                            "memory_full_ratio", "processes", "interfaces"}, problems)  # fmt: skip
    return HostOptions(
        mounts=f.text_list("mounts", ("/",)),
        disk_full_ratio=f.number("disk_full_ratio", 0.95, 0.0, 1.0),
        inodes_full_ratio=f.number("inodes_full_ratio", 0.95, 0.0, 1.0),
        memory_full_ratio=f.number("memory_full_ratio", 0.98, 0.0, 1.0),
        processes=f.text_list("processes"),
        interfaces=f.text_list("interfaces"),
    )


def check_url(target: str) -> None:
    """An http check's target: an absolute http or https URL."""
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{target!r} is not an http:// or https:// URL")
    if parts.port is not None and not 1 <= parts.port <= 65535:
        raise ValueError(f"port {parts.port} in {target!r} is outside 1-65535")
