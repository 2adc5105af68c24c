"""The committed generated code must be exactly what the .proto files generate."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "proto" / "slawatch" / "v1"


def test_committed_code_matches_the_proto_files(tmp_path: Path) -> None:
    subprocess.run(
        [str(REPO / "scripts" / "gen-proto"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = sorted((tmp_path / "slawatch" / "v1").glob("*_pb2*"))
    committed = sorted(GENERATED.glob("*_pb2*"))
    assert [f.name for f in fresh] == [f.name for f in committed]
    stale = [f.name for f in fresh if not filecmp.cmp(f, GENERATED / f.name, shallow=False)]
    assert not stale, f"regenerate with scripts/gen-proto: {stale} differ"


def test_generated_package_imports_as_slawatch_v1() -> None:
    from slawatch.v1 import observation_pb2, uplink_pb2, uplink_pb2_grpc

    assert uplink_pb2.DESCRIPTOR.package == "slawatch.v1"
    assert observation_pb2.Observation.DESCRIPTOR.full_name == "slawatch.v1.Observation"
    assert hasattr(uplink_pb2_grpc, "UplinkStub")
