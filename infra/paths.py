"""Where the kit's own files are: its checkout (the package's parent folder) and, for commands, the
project folder they run in. Standard library only; the one place the repository root is computed."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The kit's checkout: charts/, images/, policy/ and the configure modules the Jobs mount are read from here."""
CHARTS_DIR = REPO_ROOT / "charts"
"""The kit's own charts (charts/cd4ml-apps, charts/ml-app...)."""


def project_dir() -> Path:
    """The kit's project: the current directory if it holds Pulumi.yaml, else the checkout."""
    here = Path.cwd()
    if (here / "Pulumi.yaml").is_file():
        return here
    return REPO_ROOT
