import os
import pathlib
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))

ROOT = pathlib.Path(__file__).resolve().parents[3]


@pytest.fixture
def name():
    """A fresh channel name; the test fails if its file is left in /dev/shm."""
    n = f"pytest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield n
    left = [p for p in os.listdir("/dev/shm") if n in p]
    for p in left:
        os.unlink(os.path.join("/dev/shm", p))
    assert not left, f"left in /dev/shm: {left}"


@pytest.fixture(scope="session")
def rust_examples():
    """The Rust `producer` and `consumer` examples (built here if missing)."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    d = target / "release" / "examples"
    if not (d / "producer").exists() or not (d / "consumer").exists():
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "shmlane-examples", "--examples"],
            cwd=ROOT,
            check=True,
        )
    return d
