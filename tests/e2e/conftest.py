"""Fixtures of the lab tests: a target host with a private CA, two hops from an agent host."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.e2e.helpers import two_hops
from tests.lab.netlab import Host, Lab
from tests.lab.pki import Ca, CertPair, make_ca
from tests.lab.servers import unavailable_reason


@dataclass(frozen=True)
class Site:
    """An agent host and a target host two hops away, with a CA and the target's certificate."""

    agent: Host
    target: Host
    address: str
    tmp: Path
    ca: Ca
    cert: CertPair


@pytest.fixture
def site(lab: Lab, tmp_path: Path) -> Site:
    agent, r1, target = two_hops(lab)
    address = target.address_toward(r1)
    ca = make_ca(tmp_path / "pki")
    cert = ca.issue(tmp_path / "pki", "target", san_ips=[address], san_dns=["www.lab.test"])
    return Site(agent, target, address, tmp_path, ca, cert)


def needs(*kinds: str) -> None:
    """Skip, naming the package, where a server is not installed (setup installs as root)."""
    reason = unavailable_reason(*kinds)
    if reason is not None:
        skip_or_fail(reason)
