"""RULES in collector/ingest/validate.py is the one list of rejection rules: every rule the
collector's code names is in it (else its series would be missing until the first such
rejection), and every rule in it is named somewhere (else a series would stay 0 forever)."""

from __future__ import annotations

import ast
from pathlib import Path

from collector.ingest.validate import RULES

COLLECTOR = Path(__file__).resolve().parents[2] / "collector"


def _literal_first_argument(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def _named_rules(source: str) -> set[str]:
    """Rules named in ``InvalidMessage("rule", ...)`` and ``....rejections.labels("rule")``."""
    rules = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        invalid = isinstance(func, ast.Name) and func.id == "InvalidMessage"
        counted = (
            isinstance(func, ast.Attribute)
            and func.attr == "labels"
            and isinstance(func.value, ast.Attribute)
            and func.value.attr == "rejections"
        )
        rule = _literal_first_argument(node)
        if (invalid or counted) and rule is not None:
            rules.add(rule)
    return rules


def test_the_finder_sees_both_ways_of_naming_a_rule() -> None:
    source = (
        'raise InvalidMessage("bad_time", "x")\n'
        'self._metrics.rejections.labels("revoked").inc()\n'
        'self._metrics.batches.labels("rejected").inc()\n'
    )
    assert _named_rules(source) == {"bad_time", "revoked"}


def test_every_rule_the_code_names_is_listed_and_every_listed_rule_is_named() -> None:
    named: set[str] = set()
    for path in COLLECTOR.rglob("*.py"):
        named |= _named_rules(path.read_text())
    assert named - set(RULES) == set(), "named in the code but missing from RULES"
    assert set(RULES) - named == set(), "in RULES but never named by the code"
    assert len(RULES) == len(set(RULES)), "RULES lists a rule twice"
