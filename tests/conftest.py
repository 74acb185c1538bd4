"""Shared test setup: the repository root on sys.path for the Pulumi harness module."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
