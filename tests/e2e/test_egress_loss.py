"""The egress-loss check in the lab: excess, clear, undecided and rate limiting.

    agent --- r1 (border) --- r2 (egress hop) --- far (beyond the egress hop)

Loss is injected with a deterministic every-nth drop on the border's link to
the egress hop, so each case has an exact loss ratio; the verdicts follow from
the 95% Wilson interval (docs/packet-loss.md has the arithmetic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import probe_json
from tests.lab.netlab import Host, Lab

pytestmark = [pytest.mark.lab]


def _chain(lab: Lab) -> tuple[Host, Host, Host, Host]:
    agent, r1, r2, far = lab.host("agent"), lab.router("r1"), lab.router("r2"), lab.host("far")
    near = lab.attach(agent, r1)
    lab.link(r1, r2)
    beyond = lab.attach(far, r2)
    lab.add_route(r1, str(beyond.network), via=r2)
    lab.add_route(r2, str(near.network), via=r1)
    return agent, r1, r2, far


def _windows(agent: Host, egress: str, *extra: str, echoes: int, windows: int = 1) -> list[Any]:
    report = probe_json(
        agent,
        ["probe", "egress-loss", egress, "--echoes", str(echoes), "--spacing", "0.002",
         "--timeout", "0.5", "--windows", str(windows), *extra],
    )  # fmt: skip
    return [r["detail"] | {"sent": r["packets_sent"], "received": r["packets_received"]}
            for r in report["results"]]  # fmt: skip


def test_three_percent_is_excess_and_a_third_of_a_percent_is_clear(lab: Lab) -> None:
    """Every 33rd echo dropped (3.03%): 1,000 echoes give an interval well above 1%.
    Every 333rd (0.3%): 1,500 echoes give one well below (0.3% needs ~730)."""
    agent, r1, r2, _far = _chain(lab)
    egress = r2.address_toward(r1)
    lab.set_every_nth_drop(r1, r2, 33)
    (excess,) = _windows(agent, egress, echoes=1000)
    assert excess["verdict"] == "VERDICT_EXCESS", excess
    assert excess["sent"] - excess["received"] in (30, 31)  # 1000 / 33, by the counter's phase
    assert excess["loss_lower_ratio"] > 0.01
    lab.set_every_nth_drop(r1, r2, 333)
    (clear,) = _windows(agent, egress, echoes=1500)
    assert clear["verdict"] == "VERDICT_CLEAR", clear
    assert clear["sent"] - clear["received"] in (4, 5)  # 1500 / 333
    assert clear["loss_upper_ratio"] < 0.01


def test_exactly_at_the_threshold_it_stays_undecided(lab: Lab) -> None:
    """Every 100th echo dropped (exactly 1%): no window decides, not even as the
    adaptive windows double their echoes (1,000, then 2,000 in the same 2 s)."""
    agent, r1, r2, _far = _chain(lab)
    lab.set_every_nth_drop(r1, r2, 100)
    windows = _windows(agent, r2.address_toward(r1), echoes=1000, windows=3)
    assert [w["verdict"] for w in windows] == ["VERDICT_UNDECIDED"] * 3, windows
    assert [w["sent"] for w in windows] == [1000, 2000, 2000]
    assert all(w["sent"] - w["received"] == w["sent"] // 100 for w in windows)


def test_a_hop_limiting_its_icmp_replies_is_not_path_loss(lab: Lab, tmp_path: Path) -> None:
    """r2 answers at most 300 echoes a second (it gets 500/s): its replies go missing,
    while every echo to the host beyond it (through r2) comes back. Rate limiting."""
    agent, r1, r2, far = _chain(lab)
    rules = tmp_path / "limit.nft"
    rules.write_text(
        "add table inet ratelimit\n"
        "add chain inet ratelimit out { type filter hook output priority 0; }\n"
        "add rule inet ratelimit out icmp type echo-reply limit rate over 300/second drop\n"
    )
    r2.run(["nft", "-f", str(rules)])
    (window,) = _windows(
        agent, r2.address_toward(r1), "--beyond", far.address_toward(r2),
        "--border", r1.address_toward(agent), echoes=1000,
    )  # fmt: skip
    assert window["verdict"] == "VERDICT_RATE_LIMITED", window
    assert window["sent"] - window["received"] > 100
    assert window["beyond"]["received"] == window["beyond"]["sent"] == 1000
    assert window["border"]["received"] == 1000
