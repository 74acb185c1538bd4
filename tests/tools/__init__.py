"""Command-line checkers the tests run: Checkov and np-guard's network-config-analyzer.

Each pins dependencies that clash with the kit's (PyYAML, packaging...), so `make test` installs
each into its own venv under CD4ML_TOOLS (`.venv/tools/<name>`), from `tests/tools/<name>.txt`.
Without them a test skips, saying how to get them; `make test` sets CD4ML_REQUIRE_TOOLS so that
CI fails instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def tool(name: str, executable: str | None = None) -> Path:
    root = Path(os.environ.get("CD4ML_TOOLS", REPO_ROOT / ".venv" / "tools"))
    path = root / name / "bin" / (executable or name)
    if not path.exists():
        message = f"{path} is missing: `make test` installs it from tests/tools/{name}.txt"
        if os.environ.get("CD4ML_REQUIRE_TOOLS"):
            pytest.fail(message)
        pytest.skip(message)
    return path
