"""tests/lab/dashboards.py: the dashboards' queries as Grafana would send them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.lab.dashboards import (
    ALL,
    Durations,
    PanelQuery,
    VariableQuery,
    dashboards,
    label_values,
    panel_queries,
    seconds,
    substitute,
    template_variables,
    variable_queries,
)

EVERY = {"agent": ALL, "kind": ALL, "check": ALL, "target": ALL, "service_item": ALL}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('x{a=~"$agent"}', 'x{a=~"web1"}'),
        ('x{a=~"${agent}"}', 'x{a=~"web1"}'),
        ('x{a=~"${agent:regex}"}', 'x{a=~"web1"}'),
        ('x{a=~"[[agent]]"}', 'x{a=~"web1"}'),
        ('x{a=~"$agent", c=~"$check"}', 'x{a=~"web1", c=~"(icmp-gw|tcp-db)"}'),
        ("$agent$agent", "web1web1"),
    ],
)
def test_every_variable_syntax_is_substituted(text: str, want: str) -> None:
    assert substitute(text, {"agent": "web1", "check": ["icmp-gw", "tcp-db"]}) == want


def test_values_are_regex_escaped_as_grafana_does() -> None:
    # Two backslashes in the PromQL string: one for the string, one for the regex.
    assert substitute('{t=~"$t"}', {"t": "198.18.0.1:443"}) == r'{t=~"198\\.18\\.0\\.1:443"}'
    assert substitute('{t=~"$t"}', {"t": ["a|b", "c"]}) == r'{t=~"(a\\|b|c)"}'
    assert substitute('{t=~"$t"}', {"t": "back\\slash"}) == r'{t=~"back\\\\slash"}'
    assert substitute('{t=~"${t:raw}"}', {"t": ["a.b", "c"]}) == '{t=~"a.b,c"}'
    assert substitute('{t=~"${t:pipe}"}', {"t": ["a.b", "c"]}) == '{t=~"a.b|c"}'


def test_all_is_the_variables_all_value_or_everything() -> None:
    defined = {"agent": {"allValue": "ag.*"}, "check": {}}
    text = '{a=~"$agent", c=~"$check"}'
    assert substitute(text, {"agent": ALL, "check": [ALL]}, defined=defined) == (
        '{a=~"ag.*", c=~".*"}'
    )


def test_builtins_come_from_the_durations() -> None:
    durations = Durations(interval="30s", rate_interval="2m", range="1h30m")
    text = (
        "rate(x[$__rate_interval]) increase(x[${__range}]) $__interval "
        "$__range_s $__range_ms [[__interval_ms]]"
    )
    assert (
        substitute(text, {}, durations) == "rate(x[2m]) increase(x[1h30m]) 30s 5400 5400000 30000"
    )
    assert substitute("rate(x[$__rate_interval])", {}) == "rate(x[1m])"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("$nope", KeyError),
        ("$__user", KeyError),
        ("${agent:lucene}", ValueError),
    ],
)
def test_what_cannot_be_substituted_is_an_error(text: str, problem: type[Exception]) -> None:
    with pytest.raises(problem):
        substitute(text, {"agent": "a"})


@pytest.mark.parametrize(("duration", "want"), [("15s", 15), ("1h30m", 5400), ("250ms", 0.25)])
def test_durations_are_read_like_prometheus(duration: str, want: float) -> None:
    assert seconds(duration) == want


@pytest.mark.parametrize("bad", ["", "15", "1x", "1h 30m"])
def test_a_bad_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        seconds(bad)


def test_every_panel_query_of_the_committed_dashboards_is_listed_substituted() -> None:
    queries = panel_queries(EVERY)
    targets = sum(
        len(p.get("targets", []))
        for board in dashboards()
        for p in board["panels"]
        if p["type"] != "row"
    )
    assert len(queries) == targets > 40
    assert {q.dashboard for q in queries} == {b["uid"] for b in dashboards()}
    assert all("$" not in q.expr for q in queries), [q for q in queries if "$" in q.expr]
    heatmap = [q for q in queries if q.panel == "RTT heatmap: $check"]
    assert heatmap == [
        PanelQuery(
            "slawatch-loss-latency",
            "RTT heatmap: $check",
            'sum by (le) (rate(slawatch_probe_rtt_seconds_bucket{agent=~".*", '
            'check=~".*", target=~".*", kind=~".*"}[1m]))',
        )
    ]


def test_a_variable_left_out_is_an_error() -> None:
    with pytest.raises(KeyError, match="service_item"):
        panel_queries({k: v for k, v in EVERY.items() if k != "service_item"})


def _board(panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {"uid": "u", "templating": {"list": []}, "panels": panels}


def test_panels_in_collapsed_rows_count_and_hidden_queries_do_not(tmp_path: Path) -> None:
    inner = {"type": "stat", "title": "in", "targets": [{"expr": "a"}]}
    panels: list[dict[str, Any]] = [
        {"type": "row", "title": "r", "collapsed": True, "panels": [inner]},
        {
            "type": "timeseries",
            "title": "out",
            "targets": [{"expr": "b"}, {"expr": "c", "hide": True}],
        },
    ]
    (tmp_path / "u.json").write_text(json.dumps(_board(panels)))
    assert panel_queries({}, directory=tmp_path) == [
        PanelQuery("u", "in", "a"),
        PanelQuery("u", "out", "b"),
    ]


def test_variable_queries_in_order_both_forms(tmp_path: Path) -> None:
    board = _board([])
    board["templating"] = {
        "list": [
            {"type": "datasource", "name": "datasource", "query": "prometheus"},
            {"type": "query", "name": "a", "query": "label_values(m, a)"},
            {"type": "query", "name": "b", "query": {"query": 'label_values(m{a=~"$a"}, b)'}},
        ]
    }
    (tmp_path / "u.json").write_text(json.dumps(board))
    assert variable_queries(tmp_path) == [
        VariableQuery("u", "a", "label_values(m, a)"),
        VariableQuery("u", "b", 'label_values(m{a=~"$a"}, b)'),
    ]


def test_committed_variable_queries_are_listed() -> None:
    queries = {(q.dashboard, q.variable): q.query for q in variable_queries()}
    assert queries["slawatch-fleet", "agent"] == "label_values(slawatch_agent_connected, agent)"
    assert set(queries) >= {
        ("slawatch-loss-latency", "check"),
        ("slawatch-loss-latency", "target"),
        ("slawatch-sla", "service_item"),
    }


def test_label_values_gives_selector_and_label() -> None:
    assert label_values('label_values(m{a=~"$a", b="x, y"}, check)') == (
        'm{a=~"$a", b="x, y"}',
        "check",
    )
    assert label_values("label_values(agent)") == ("", "agent")
    with pytest.raises(ValueError, match="label_values"):
        label_values("query_result(up)")


def test_template_variables_names_every_use() -> None:
    text = 'rate(x{a=~"$a", b=~"${b:regex}", c=~"[[c]]"}[$__rate_interval])'
    assert template_variables(text) == {"a", "b", "c", "__rate_interval"}
