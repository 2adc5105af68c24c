"""Coverage is kept as merged intervals per agent, whatever order the windows come in."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.store.coverage import SCHEMA_STEP_3, Interval, coverage, gaps, merge_window

EVERYTHING = (0, 2**63 - 1)


@pytest.fixture
def conn() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.executescript(SCHEMA_STEP_3)
    yield connection
    connection.close()


def stored(conn: sqlite3.Connection, agent: str = "a") -> list[Interval]:
    rows = conn.execute(
        "SELECT start_ns, end_ns FROM coverage WHERE agent_id=? ORDER BY start_ns", (agent,)
    )
    return [(s, e) for s, e in rows]


def add(conn: sqlite3.Connection, *windows: Interval, agent: str = "a") -> list[Interval]:
    for start, end in windows:
        merge_window(conn, agent, start, end)
    return stored(conn, agent)


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ([(10, 20), (20, 30)], [(10, 30)]),  # tiling in order: one interval
        ([(20, 30), (10, 20)], [(10, 30)]),  # out of order: extends to the left
        ([(10, 20), (30, 40)], [(10, 20), (30, 40)]),  # a gap stays a gap
        ([(10, 20), (30, 40), (20, 30)], [(10, 40)]),  # a late batch bridges two
        ([(10, 20), (30, 40), (50, 60), (15, 55)], [(10, 60)]),  # ... or three
        ([(10, 40), (20, 30)], [(10, 40)]),  # inside: nothing changes
        ([(20, 30), (10, 40)], [(10, 40)]),  # swallows one
        ([(10, 20), (15, 25)], [(10, 25)]),  # overlap (a clock step)
        ([(10, 20), (5, 10), (20, 21)], [(5, 21)]),  # touching on both sides
        ([(10, 20), (25, 25), (0, 0)], [(10, 20)]),  # empty windows cover nothing
        ([(10, 20), (21, 30), (40, 50), (22, 23)], [(10, 20), (21, 30), (40, 50)]),
    ],
)
def test_merge(conn: sqlite3.Connection, windows: list[Interval], expected: list[Interval]) -> None:
    assert add(conn, *windows) == expected


def test_agents_are_kept_apart(conn: sqlite3.Connection) -> None:
    add(conn, (10, 20), agent="a")
    add(conn, (20, 30), agent="b")
    assert stored(conn, "a") == [(10, 20)]
    assert stored(conn, "b") == [(20, 30)]


def test_reading_clips_to_the_asked_span(conn: sqlite3.Connection) -> None:
    add(conn, (10, 20), (30, 40), (50, 60))
    assert coverage(conn, "a", 15, 55) == [(15, 20), (30, 40), (50, 55)]
    assert coverage(conn, "a", 20, 30) == []  # half-open: touching is not covering
    assert coverage(conn, "a", 0, 100) == [(10, 20), (30, 40), (50, 60)]
    assert coverage(conn, "nobody", 0, 100) == []


def test_gaps() -> None:
    assert gaps([(15, 20), (30, 40)], 10, 50) == [(10, 15), (20, 30), (40, 50)]
    assert gaps([(10, 50)], 10, 50) == []
    assert gaps([], 10, 50) == [(10, 50)]


def union(windows: list[Interval]) -> list[Interval]:
    """The reference: merge sorted windows the obvious way."""
    merged: list[list[int]] = []
    for start, end in sorted(w for w in windows if w[0] < w[1]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]


WINDOWS = st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 30)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=40,
)


@given(WINDOWS, st.randoms(use_true_random=False))
@settings(max_examples=300, deadline=None)
def test_any_order_gives_the_union(windows: list[Interval], rng: random.Random) -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA_STEP_3)
    rng.shuffle(windows)
    assert add(conn, *windows) == union(windows)
    conn.close()
