"""Without CAP_NET_RAW the ICMP engine uses datagram ICMP sockets, or says what to change.

The agent runs as root with CAP_NET_RAW removed from its bounding set
(setpriv), inside a namespace whose ping_group_range the test sets: the
same checks the kernel makes for an unprivileged user.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import AGENT_CMD, skip_or_fail
from tests.lab.netlab import Host, Lab

pytestmark = pytest.mark.lab


def _probe_without_net_raw(host: Host, ping_group_range: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("setpriv") is None:
        skip_or_fail("needs setpriv (util-linux) to drop CAP_NET_RAW")
    host.run(["sysctl", "-qw", f"net.ipv4.ping_group_range={ping_group_range}"])
    argv = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--",
            AGENT_CMD, "--log-level", "debug", "probe", "icmp", "127.0.0.1",
            "--count", "5", "--interval", "0.01", "--json"]  # fmt: skip
    return subprocess.run(host.exec_argv(argv), capture_output=True, text=True, timeout=60)


def test_falls_back_to_datagram_sockets_when_allowed(lab: Lab) -> None:
    done = _probe_without_net_raw(lab.host("unprivileged"), "0 0")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["received"] == 5
    assert "datagram mode" in done.stderr


def test_refuses_with_a_clear_message_when_not_allowed(lab: Lab) -> None:
    done = _probe_without_net_raw(lab.host("unprivileged"), "1 0")
    assert done.returncode == 2
    assert "CAP_NET_RAW" in done.stderr
    assert "ping_group_range is '1 0'" in done.stderr
    assert "Traceback" not in done.stderr
