"""The committed Grafana dashboards' queries, as Grafana would send them to Prometheus.

For tests that run the dashboards' PromQL against a real Prometheus: every panel
query with its template variables substituted the way Grafana's Prometheus data
source does it, Grafana's built-in intervals replaced by given durations, and every
template variable's own query. Reads only the JSON files in
deploy/monitoring/dashboards/ (no Grafana, no SDK).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "dashboards"

# "All" of a multi-value variable: its allValue (".*" here) or, where it has none,
# ".*" too: Grafana would send the list of every value, which matches the same series
# wherever the variable is used with =~ (as every slawatch dashboard uses it).
ALL = "$__all"

# Grafana's template syntax: $var, [[var]] or [[var:format]], ${var}, ${var.field} or
# ${var:format} (public/app/features/templating/template_srv.ts).
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)
# What the Prometheus data source escapes in a value that goes into a regex matcher,
# each with two backslashes: one for the PromQL string, one for the regex.
_REGEX_SPECIAL = re.compile(r"[$^*{}\[\]'+?.()|]")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.+),\s*)?(\w+)\)\s*$", re.S)


class PanelQuery(NamedTuple):
    dashboard: str  # the dashboard's uid
    panel: str  # the panel's title, as written (a repeated panel's "$check" and all)
    expr: str  # the PromQL, substituted


class VariableQuery(NamedTuple):
    dashboard: str
    variable: str
    query: str  # as written: label_values(metric{...$agent...}, label)


@dataclass(frozen=True)
class Durations:
    """What Grafana puts for its built-in interval variables, as Prometheus durations."""

    interval: str = "15s"
    rate_interval: str = "1m"
    range: str = "1h"

    def builtins(self) -> dict[str, str]:
        interval, range_ = seconds(self.interval), seconds(self.range)
        return {
            "__interval": self.interval,
            "__interval_ms": f"{round(interval * 1000)}",
            "__rate_interval": self.rate_interval,
            "__range": self.range,
            "__range_s": f"{round(range_)}",
            "__range_ms": f"{round(range_ * 1000)}",
        }


def seconds(duration: str) -> float:
    """A Prometheus duration ("1h30m", "250ms") in seconds."""
    parts = _DURATION.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * _SECONDS[u] for n, u in parts)


def dashboards(directory: Path = DASHBOARDS) -> list[dict[str, Any]]:
    """Every committed dashboard, by file name."""
    return [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]


def _panels(board: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too; rows themselves left out."""
    out = []
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            out += panel.get("panels", [])
        else:
            out.append(panel)
    return out


def panel_queries(
    variables: Mapping[str, str | Sequence[str]],
    durations: Durations | None = None,
    directory: Path = DASHBOARDS,
) -> list[PanelQuery]:
    """Every query of every panel of every committed dashboard, substituted.

    ``variables`` gives each template variable a value, one string or a list (ALL for
    "All"); a variable a query uses and ``variables`` lacks is a KeyError. Built-ins
    come from ``durations`` (by default Durations()). Hidden queries are left out."""
    found = []
    for board in dashboards(directory):
        defined = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        for panel in _panels(board):
            for target in panel.get("targets", []):
                if target.get("hide") or not target.get("expr"):
                    continue
                expr = substitute(target["expr"], variables, durations, defined)
                found.append(PanelQuery(board["uid"], panel.get("title", ""), expr))
    return found


def variable_queries(directory: Path = DASHBOARDS) -> list[VariableQuery]:
    """Every query variable of every committed dashboard, in the dashboard's order
    (each may use the variables before it)."""
    found = []
    for board in dashboards(directory):
        for var in board.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            query = var.get("query", "")
            # Newer Grafana saves {"query": "...", "refId": ...}; both forms are valid.
            text = query.get("query", "") if isinstance(query, dict) else query
            found.append(VariableQuery(board["uid"], var["name"], text))
    return found


def label_values(query: str) -> tuple[str, str]:
    """A ``label_values(selector, label)`` query as (series selector, label): what to
    ask Prometheus's /api/v1/label/<label>/values with match[]=<selector> (the selector
    is "" in ``label_values(label)``)."""
    match = _LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"not a label_values() query: {query!r}")
    return (match.group(1) or "").strip(), match.group(2)


def template_variables(text: str) -> set[str]:
    """The names of the template variables ``text`` uses, built-ins ("__...") too."""
    return {m.group(1) or m.group(2) or m.group(4) for m in _VARIABLE.finditer(text)}


def substitute(
    text: str,
    variables: Mapping[str, str | Sequence[str]],
    durations: Durations | None = None,
    defined: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """``text`` with every $var, ${var}, ${var:format} and [[var]] replaced.

    Built-ins ($__rate_interval, $__interval, $__range, $__range_s ...) come from
    ``durations`` (by default Durations()); other variables from ``variables``,
    formatted as Grafana's Prometheus data source does for a multi-value variable:
    each value regex-escaped, several as (a|b). ``defined`` (the dashboard's
    variables by name) supplies the allValue that ALL stands for."""
    builtins = (durations or Durations()).builtins()

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name.startswith("__"):
            if name not in builtins:
                raise KeyError(f"Grafana built-in ${name} is not substituted here")
            return builtins[name]
        if name not in variables:
            raise KeyError(f"no value given for template variable ${name}")
        return _format(variables[name], fmt, (defined or {}).get(name, {}))

    return _VARIABLE.sub(replace, text)


def _format(value: str | Sequence[str], fmt: str | None, variable: Mapping[str, Any]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if values == [ALL]:
        # allValue is used as it is, never escaped; without one, every value.
        return str(variable.get("allValue") or ".*")
    if fmt in (None, "regex"):
        escaped = [_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if fmt in ("raw", "csv"):
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    raise ValueError(f"variable format {fmt!r} is not substituted here")


def _regex_escape(value: str) -> str:
    """As Grafana's prometheusSpecialRegexEscape: backslashes first, then specials."""
    value = value.replace("\\", "\\\\\\\\")
    return _REGEX_SPECIAL.sub(lambda m: "\\\\" + m.group(0), value)
