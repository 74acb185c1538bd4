"""Shared test setup: the test helpers (Pulumi harness, stand-ins) importable by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "standins"))

pytest_plugins = ["pytester"]


def pytest_addoption(parser):
    group = parser.getgroup("cd4ml")
    group.addoption("--upstream-charts", default=None, metavar="DIR",
                    help="directory with the pinned upstream charts' sources (see tests/test_upstream_charts.py); "
                         "also CD4ML_UPSTREAM_CHARTS")


def pytest_terminal_summary(terminalreporter):
    """The smoke fault matrix, as a table: every injected fault and the checks that caught it."""
    try:
        from test_smoke import FAULT_MATRIX
    except ImportError:
        return
    if not FAULT_MATRIX:
        return
    terminalreporter.section("smoke fault matrix")
    terminalreporter.write_line(f"{'edge / service':<30} {'fault':<30} {'verdict':<8} failing checks")
    for edge, fault, failed, verdict in sorted(FAULT_MATRIX):
        terminalreporter.write_line(f"{edge:<30} {fault:<30} {verdict:<8} {failed}")
