"""The table and the JSON report of `slawatch-agent path`, from recorded rounds."""

from __future__ import annotations

import ipaddress
import json

from agent.path.hops import RATE_LIMITED_NOTE, Answer, AnswerKind, PathChange, RoundResult
from agent.path.names import ReverseNames
from agent.path.render import analyse, report_dict, table_text
from agent.path.session import PathRun, PathSettings
from agent.path.trace import Flow

PATH = ["10.0.0.1", "10.0.1.1", "10.0.2.1", "192.0.2.9"]


def _run(lost_at_two: int, rounds: int = 20) -> PathRun:
    flow = Flow("udp", "10.0.0.2", PATH[-1], 41000, 33434)
    run = PathRun(PathSettings(flow, rounds, 1.0, 2.0, 30, 60.0), 1_700_000_000_000_000_000)
    for index in range(rounds):
        answers = {
            ttl: Answer(address, 1_500_000, AnswerKind.DESTINATION if ttl == 4 else
                        AnswerKind.TIME_EXCEEDED)
            for ttl, address in enumerate(PATH, start=1)
            if not (ttl == 2 and index < lost_at_two)
        }  # fmt: skip
        run.rounds.append(RoundResult(index, run.started_unix_ns + index, 4, answers))
    return run


def test_report_marks_rate_limiting_border_and_egress() -> None:
    run = _run(lost_at_two=15)
    run.changes.append(PathChange(3, run.started_unix_ns, (PATH[0], "10.9.9.9"), tuple(PATH)))
    analysis = analyse(run, [], [ipaddress.IPv4Network("10.0.0.0/16")])
    report = report_dict(run, analysis, ReverseNames(enabled=False))
    json.dumps(report)  # serialisable as is
    assert report["border"] == {"ttl": 3, "address": "10.0.2.1"}
    assert report["egress"] == {"ttl": 4, "address": "192.0.2.9"}
    assert report["rate_limited_ttls"] == [2]
    assert report["path_loss"] is None
    assert report["reached"] is True
    hop = report["hops"][1]
    assert (hop["sent"], hop["received"], hop["loss_ratio"]) == (20, 5, 0.75)
    assert hop["verdict"] == "rate_limited"
    assert hop["markers"] == ["rate_limited"]
    assert report["hops"][0]["rtt_ms"] == {"min": 1.5, "mean": 1.5, "p99": 1.5, "max": 1.5}
    assert report["path_changes"] == [{
        "round": 3, "at": "2023-11-14T22:13:20.000+00:00",
        "old": ["10.0.0.1", "10.9.9.9"], "new": PATH,
    }]  # fmt: skip


def test_table_says_rate_limited_not_path_loss() -> None:
    run = _run(lost_at_two=15)
    text = table_text(run, analyse(run, ["10.0.1.1"], []), ReverseNames(enabled=False), False)
    lines = text.splitlines()
    assert lines[0] == "path to 192.0.2.9 (udp 41000->33434 from 10.0.0.2): round 20/20"
    assert "TTL" in lines[1]
    assert "95% interval" in lines[1]
    hop_two = lines[3]
    assert "10.0.1.1" in hop_two
    assert "75.0%" in hop_two
    assert "border" in hop_two
    assert RATE_LIMITED_NOTE in hop_two
    assert "egress" in lines[4]
    assert "target" in lines[5]


def test_table_lists_path_changes_and_other_addresses() -> None:
    run = _run(lost_at_two=0)
    run.rounds[5].answers[2] = Answer("10.9.9.9", 1, AnswerKind.TIME_EXCEEDED)
    run.changes.append(PathChange(5, run.started_unix_ns, tuple(PATH), (PATH[0], "10.9.9.9")))
    text = table_text(run, analyse(run, [], []), ReverseNames(enabled=False), True)
    assert "     10.9.9.9 (1 answers)" in text.splitlines()
    assert text.splitlines()[-1].startswith("path change at round 5 (")
    assert "10.0.1.1 10.0.2.1 192.0.2.9  ->  10.0.0.1 10.9.9.9" in text


def test_empty_run() -> None:
    run = _run(lost_at_two=0, rounds=0)
    text = table_text(run, analyse(run, [], []), ReverseNames(enabled=False), False)
    assert "(no answer yet)" in text
    report = report_dict(run, analyse(run, [], []), ReverseNames(enabled=False))
    assert report["hops"] == []
    assert report["reached"] is False
    assert report["border"] is None
