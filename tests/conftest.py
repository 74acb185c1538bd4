"""Shared test setup: the test helpers (Pulumi harness, stand-ins) importable by name."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "standins"))

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """MLflow with authentication on, configured by the kit's own configure code (as the platform's is);
    its allowed hosts are MLflow's defaults (localhost and private addresses). Started once per run."""
    from smoke_fixtures import MLFLOW_ADMIN, MLflowServer

    server = MLflowServer(tmp_path_factory.mktemp("mlflow"), admin=MLFLOW_ADMIN)
    server.configure_like_the_kit()
    yield server
    server.stop()


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
