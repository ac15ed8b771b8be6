import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def run_specs(*args, paths=None, cwd=ROOT, timeout=1200):
    """Run the specs (or the given spec files) in a fresh process, so Hypothesis settings
    and framework state stay isolated."""
    targets = [str(p) for p in (paths or [ROOT / "specs"])]
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider",
           "--no-matrix", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def specs_runner():
    return run_specs
