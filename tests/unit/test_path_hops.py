"""The pure judgements of `slawatch-agent path`: hop statistics, rate limiting
versus path loss, border and egress hops, path changes."""

from __future__ import annotations

import ipaddress

import pytest

from agent.path.hops import (
    Answer,
    AnswerKind,
    HopStats,
    PathTracker,
    RoundResult,
    Verdict,
    aggregate_hops,
    final_ttl,
    find_border_egress,
    judge_loss,
    merge_path,
    paths_differ,
)

TE, DEST, UNREACH = AnswerKind.TIME_EXCEEDED, AnswerKind.DESTINATION, AnswerKind.UNREACHABLE
PATH = ["10.0.0.1", "10.0.1.1", "10.0.2.1", "192.0.2.9"]


def _round(index: int, path: list[str | None], probed: int = 30, rtt: int = 1000) -> RoundResult:
    """A round whose answers follow ``path`` (None: lost), the last being the target."""
    answers = {
        ttl: Answer(address, rtt * ttl, DEST if ttl == len(path) else TE)
        for ttl, address in enumerate(path, start=1)
        if address is not None
    }
    return RoundResult(index, 1_000_000_000 * index, probed, answers)


# -- hop statistics ---------------------------------------------------------


def test_hops_count_sent_received_and_rtt() -> None:
    rounds = [_round(0, PATH), _round(1, [*PATH[:2], None, PATH[3]], probed=4)]
    hops = aggregate_hops(rounds, final_ttl(rounds))
    counts = [(h.ttl, h.sent, h.received) for h in hops]
    assert counts == [(1, 2, 2), (2, 2, 2), (3, 2, 1), (4, 2, 2)]
    assert hops[2].loss_ratio == 0.5
    assert hops[2].loss_interval == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert hops[3].destination
    assert not hops[2].destination
    assert hops[1].rtt_ms() == {"min": 0.002, "mean": 0.002, "p99": 0.002, "max": 0.002}


def test_probes_past_the_target_are_not_hops() -> None:
    # The first round probes every TTL up to the maximum; the target answers
    # beyond its own TTL, and those answers are not hops.
    first = _round(0, PATH)
    first.answers[5] = Answer("192.0.2.9", 5000, DEST)
    assert final_ttl([first]) == 4
    hops = aggregate_hops([first, _round(1, PATH, probed=4)], 4)
    assert [h.sent for h in hops] == [2, 2, 2, 2]


def test_a_ttl_not_probed_in_a_round_is_not_sent() -> None:
    hops = aggregate_hops([_round(0, PATH, probed=2), _round(1, PATH)], 4)
    assert [h.sent for h in hops] == [2, 2, 1, 1]


def test_addresses_ranked_by_answers() -> None:
    rounds = [_round(0, PATH), _round(1, PATH), _round(2, [PATH[0], "10.9.9.9", *PATH[2:]])]
    hop = aggregate_hops(rounds, 4)[1]
    assert hop.addresses == (("10.0.1.1", 2), ("10.9.9.9", 1))
    assert hop.address == "10.0.1.1"


def test_without_an_end_the_furthest_answer_counts() -> None:
    rounds = [_round(0, [PATH[0], None, "10.0.2.1"])]
    rounds[0].answers[3] = Answer("10.0.2.1", 1, TE)
    assert final_ttl(rounds) == 3
    assert final_ttl([]) == 0


def test_a_router_unreachable_ends_the_path() -> None:
    answers = {1: Answer("10.0.0.1", 1, TE), 2: Answer("10.0.1.1", 1, UNREACH)}
    result = RoundResult(0, 0, 30, answers)
    assert result.end_ttl() == 2
    assert not result.reached()
    assert result.hop_list() == ["10.0.0.1", "10.0.1.1"]


# -- rate limiting versus path loss -------------------------------------------


def test_no_loss_is_ok_everywhere() -> None:
    judged = judge_loss([(50, 50)] * 4)
    assert judged.verdicts == (Verdict.OK,) * 4
    assert judged.path_loss_start_ttl is None
    assert judged.furthest_ttl == 4


def test_loss_at_one_hop_only_is_rate_limiting() -> None:
    judged = judge_loss([(40, 40), (40, 9), (40, 40), (40, 40)])
    assert judged.verdicts == (Verdict.OK, Verdict.RATE_LIMITED, Verdict.OK, Verdict.OK)
    assert judged.path_loss_start_ttl is None


def test_loss_that_persists_to_the_end_is_path_loss_from_where_it_starts() -> None:
    judged = judge_loss([(60, 60), (60, 60), (60, 48), (60, 48), (60, 48)])
    assert judged.path_loss_start_ttl == 3
    assert judged.verdicts == (Verdict.OK, Verdict.OK) + (Verdict.PATH_LOSS,) * 3


def test_too_few_rounds_cannot_place_the_start() -> None:
    # 0/10 lost is not significantly below 1/10: the loss may start anywhere.
    judged = judge_loss([(10, 10), (10, 10), (10, 9)])
    assert judged.path_loss_start_ttl == 1


def test_rate_limited_hop_inside_path_loss() -> None:
    # Hop 2 loses far more than the end (its replies are limited); the path
    # loses 20% from hop 3 on, but hop 2 cannot say whether before or after it.
    judged = judge_loss([(60, 60), (60, 10), (60, 48), (60, 48)])
    assert judged.verdicts[1] == Verdict.RATE_LIMITED
    assert judged.verdicts[2:] == (Verdict.PATH_LOSS, Verdict.PATH_LOSS)
    assert judged.path_loss_start_ttl == 2


def test_silent_hops_and_hops_past_the_last_answer() -> None:
    judged = judge_loss([(20, 20), (20, 0), (20, 20), (20, 0), (0, 0)])
    assert judged.verdicts == (
        Verdict.OK, Verdict.SILENT, Verdict.OK, Verdict.UNKNOWN, Verdict.UNKNOWN,
    )  # fmt: skip
    assert judged.furthest_ttl == 3


def test_nothing_answered() -> None:
    judged = judge_loss([(5, 0), (5, 0)])
    assert judged.verdicts == (Verdict.UNKNOWN, Verdict.UNKNOWN)
    assert judged.furthest_ttl is None


# -- border and egress ----------------------------------------------------------


def _hops() -> list[HopStats]:
    return aggregate_hops([_round(0, PATH), _round(1, PATH)], 4)


def test_border_from_its_address() -> None:
    found = find_border_egress(_hops(), border_addresses=["10.0.1.1"])
    assert (found.border_ttl, found.egress_ttl, found.basis) == (2, 3, "border address")


def test_border_from_provider_prefixes_is_the_last_hop_inside() -> None:
    prefixes = [ipaddress.IPv4Network("10.0.0.0/23")]
    found = find_border_egress(_hops(), provider_prefixes=prefixes)
    assert (found.border_ttl, found.egress_ttl, found.basis) == (2, 3, "provider prefix")


def test_border_addresses_win_over_prefixes_and_unknown_border() -> None:
    prefixes = [ipaddress.IPv4Network("10.0.0.0/8")]
    found = find_border_egress(_hops(), ["10.0.0.1"], prefixes)
    assert (found.border_ttl, found.egress_ttl) == (1, 2)
    missing = find_border_egress(_hops(), ["203.0.113.1"])
    assert (missing.border_ttl, missing.egress_ttl) == (None, None)
    assert find_border_egress(_hops()).basis == "none"


def test_border_at_the_last_hop_has_no_egress() -> None:
    found = find_border_egress(_hops(), ["192.0.2.9"])
    assert (found.border_ttl, found.egress_ttl) == (4, None)


def test_border_found_by_any_address_it_answered_from() -> None:
    rounds = [_round(0, PATH), _round(1, [PATH[0], "10.0.1.2", *PATH[2:]])]
    found = find_border_egress(aggregate_hops(rounds, 4), ["10.0.1.2"])
    assert found.border_ttl == 2


# -- path changes -----------------------------------------------------------------


def test_stars_are_no_evidence_of_a_change() -> None:
    assert not paths_differ(PATH, True, [PATH[0], None, *PATH[2:]], True)
    assert not paths_differ(PATH, True, PATH[:2], False)
    assert paths_differ(PATH, True, [PATH[0], "10.9.9.9", *PATH[2:]], True)
    assert paths_differ(PATH, True, [*PATH[:2], PATH[3]], True)  # shorter, both reached


def test_merge_fills_stars() -> None:
    assert merge_path([PATH[0], None], [None, PATH[1], PATH[2]]) == PATH[:3]


def test_tracker_reports_a_change_once_with_old_and_new() -> None:
    tracker = PathTracker()
    new_path = [PATH[0], "10.9.9.9", *PATH[2:]]
    events = [
        tracker.update(r)
        for r in [
            _round(0, PATH),
            _round(1, [PATH[0], None, *PATH[2:]]),
            _round(2, new_path),
            _round(3, new_path),
        ]
    ]
    assert events[:2] == [None, None]
    assert events[3] is None
    change = events[2]
    assert change is not None
    assert (change.round_index, change.old, change.new) == (2, tuple(PATH), tuple(new_path))
    assert change.at_unix_ns == 2_000_000_000


def test_tracker_ignores_rounds_without_answers_and_fills_stars() -> None:
    tracker = PathTracker()
    assert tracker.update(_round(0, [PATH[0], None, *PATH[2:]])) is None
    assert tracker.update(RoundResult(1, 0, 4, {})) is None
    assert tracker.update(_round(2, PATH)) is None
    assert tracker.known == PATH
