"""ruff passes on the tools, the tests and the source notebooks (pyproject.toml says what it reads)."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_ruff_passes():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
