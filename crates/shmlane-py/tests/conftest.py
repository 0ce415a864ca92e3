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
    """The Rust `producer`, `consumer` and `ticks` examples (built here if missing)."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    d = target / "release" / "examples"
    if not all((d / b).exists() for b in ("producer", "consumer", "ticks", "publisher", "subscriber")):
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", "shmlane-examples", "--examples"],
            cwd=ROOT,
            check=True,
        )
    return d


@pytest.fixture(scope="session")
def c_ticks(rust_examples):
    """The C `ticks` example (examples/c/ticks.c) built against the C ABI's static library."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    lib = target / "release" / "libshmlane.a"
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "shmlane-c"], cwd=ROOT, check=True)
    out = target / "c-examples" / "ticks-pytest"
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run(
        [cc, "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", str(ROOT / "crates/shmlane-c/include"),
         "-o", str(out), str(ROOT / "examples/c/ticks.c"), str(lib), "-lpthread", "-ldl", "-lm"],
        check=True,
    )
    return out
