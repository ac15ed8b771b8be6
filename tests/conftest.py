import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent


def run_specs(*args, cwd=ROOT, timeout=1200):
    """Run the specs in a fresh process (Hypothesis settings and Keras stay isolated)."""
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "specs"), "-q", "-p", "no:cacheprovider",
           "--no-matrix", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def specs_runner():
    return run_specs
