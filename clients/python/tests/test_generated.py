"""The committed stubs are exactly what generate.sh makes from the proto today."""

import filecmp
import os
import subprocess
import sys
from pathlib import Path

CLIENT_DIR = Path(__file__).resolve().parent.parent
COMMITTED = CLIENT_DIR / "gatehouse_client" / "_proto"


def files(root: Path):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_committed_stubs_match_the_proto(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(CLIENT_DIR / "generate.sh"), str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert files(tmp_path) == files(COMMITTED)
    for name in files(tmp_path):
        assert filecmp.cmp(tmp_path / name, COMMITTED / name, shallow=False), (
            f"{name} differs from what generate.sh makes from proto/gatehouse/v1/gatehouse.proto: run "
            "clients/python/generate.sh and commit the result"
        )
    assert "ReloadPolicies" in (tmp_path / "gatehouse" / "v1" / "gatehouse_pb2_grpc.py").read_text()


def test_generate_refuses_another_grpcio_tools(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 0.0.1\n")
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake))
    done = subprocess.run(
        ["bash", str(CLIENT_DIR / "generate.sh"), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "grpcio-tools 0.0.1 found" in done.stderr
