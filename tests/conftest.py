"""Shared test setup: the repository root on sys.path for the Pulumi harness module."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def pytest_addoption(parser):
    group = parser.getgroup("cd4ml")
    group.addoption("--upstream-charts", default=None, metavar="DIR",
                    help="directory with the pinned upstream charts' sources (see tests/test_upstream_charts.py); "
                         "also CD4ML_UPSTREAM_CHARTS")
