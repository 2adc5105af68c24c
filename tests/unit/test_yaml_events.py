"""The event-stream loader gives exactly what yaml.safe_load gives."""

from __future__ import annotations

import pytest
import yaml

from agent import yaml_events

DOCUMENTS = [
    "agent_id: a\nchecks:\n  - {id: x, kind: icmp, target: 198.18.0.1, interval: 1.5}\n",
    "a: 1\nb: 2.5\nc: true\nd: null\ne: '0012'\nf: 0x1f\ng: [1, [2, 3], {h: i}]\nj: ~\n",
    "x: &anchor {k: v}\ny: *anchor\nz: [*anchor, *anchor]\n",
    "- 1\n- two\n- 2024-01-02\n- !!str 5\n- '::1'\n- ::1\n",
    "just a scalar\n",
    "",
    "empty_map: {}\nempty_list: []\nmultiline: |\n  line one\n  line two\n",
    "? [complex, key]\n: value\n",
]


@pytest.mark.parametrize("text", DOCUMENTS)
def test_matches_safe_load(text: str) -> None:
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError:
        with pytest.raises(yaml.YAMLError):
            yaml_events.load(text)
        return
    assert yaml_events.load(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n---\nb: 2\n", "one YAML document"),
        ("base: &b {x: 1}\nderived:\n  <<: *b\n", "merge keys"),
        ("a: !!python/object:os.system {}\n", "could not determine a constructor"),
        ("a: [1, 2\n", "expected ','"),
    ],
)
def test_refuses_what_it_should(text: str, message: str) -> None:
    with pytest.raises(yaml.YAMLError, match=message):
        yaml_events.load(text)
