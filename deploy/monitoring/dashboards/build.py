"""Write the slawatch Grafana dashboards (this folder's *.json) from their code.

    scripts/build-dashboards            write them
    scripts/build-dashboards --check    exit 1 if a committed file is stale

The dashboards are written with grafana-foundation-sdk's builders (one module per
dashboard, the panel kinds in panels.py) and the JSON is committed, so that
Grafana's file provisioning reads it as it is. Each is checked with validate.py
before it is written; tests/unit/test_dashboards.py fails when a committed file
differs from what this writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deploy.monitoring.dashboards import collector, fleet, loss_latency, sla
from deploy.monitoring.dashboards.validate import validate

HERE = Path(__file__).resolve().parent

# File name (the uid, stable: links and bookmarks use it) -> the dashboard.
DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    f"{fleet.UID}.json": fleet.build,
    f"{loss_latency.UID}.json": loss_latency.build,
    f"{sla.UID}.json": sla.build,
    f"{collector.UID}.json": collector.build,
}


def render() -> dict[str, str]:
    """Every dashboard's file name and text; ValueError if one is not valid."""
    out = {}
    for name, make in DASHBOARDS.items():
        data = make()
        problems = validate(data)
        if problems:
            raise ValueError(f"{name} is not a valid dashboard:\n  " + "\n  ".join(problems))
        # Sorted keys: a file changes only where the dashboard does.
        out[name] = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def stale(directory: Path = HERE) -> list[str]:
    """The dashboards whose file in ``directory`` is missing or differs from render()."""
    return [
        name
        for name, text in render().items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the slawatch Grafana dashboards.")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    parser.add_argument("--out", type=Path, default=HERE, help="folder (default: this one)")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.out)
        for name in names:
            print(f"stale: {args.out / name} (run scripts/build-dashboards)", file=sys.stderr)
        return 1 if names else 0
    for name, text in render().items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
