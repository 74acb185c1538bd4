"""Shared test setup: the test helpers (Pulumi harness, stand-ins) importable by name."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "standins"))

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """The run's one MLflow: authentication on, configured by the kit's own configure code (as the
    platform's is); its allowed hosts are MLflow's defaults (localhost and private addresses). Started
    once: tests that need users or experiments of their own create them under names of their own
    (`unique_name`), never a server. Its credential cache is on (smoke_fixtures.MLflowServer)."""
    from smoke_fixtures import MLFLOW_ADMIN, MLflowServer

    server = MLflowServer(tmp_path_factory.mktemp("mlflow"), admin=MLFLOW_ADMIN, auth_cache=True)
    server.configure_like_the_kit()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def unique_name():
    """`unique_name("ada")` -> "ada-3f9c1e": a name no other test uses on the shared servers (a DNS label)."""
    import secrets

    return lambda base: f"{base}-{secrets.token_hex(3)}"


@pytest.fixture
def pulumi_mocks(request):
    """Pulumi's mocks installed for one test (`pulumi.runtime.set_mocks`; project, stack and config from
    indirect parametrization, else cd4ml/local and none), the RecordingMonitor yielded, and in `finally`
    the runtime put back as it was: the next test gets no mocks, root stack or config of this one's.
    (`pulumi_harness.run_program` does the same around each run.)"""
    from pulumi_harness import mocked_runtime

    with mocked_runtime(**getattr(request, "param", {})) as monitor:
        yield monitor


def pytest_addoption(parser):
    group = parser.getgroup("cd4ml")
    group.addoption("--upstream-charts", default=None, metavar="DIR",
                    help="directory with the pinned upstream charts' sources (see tests/test_upstream_charts.py); "
                         "also CD4ML_UPSTREAM_CHARTS")


def _fault_matrix() -> list | None:
    try:
        from test_smoke import FAULT_MATRIX
    except ImportError:
        return None
    return FAULT_MATRIX


RECORDED_CALLS: set[tuple] = set()
"""The calls the stand-ins received, in this process and (on the controller) every worker's."""


def _recorded_calls() -> set[tuple]:
    from http_standin import RECORDED

    return RECORDED_CALLS | {(c.service, c.method, c.path, c.headers) for c in RECORDED}


def pytest_sessionfinish(session):
    """On a pytest-xdist worker: hand this worker's rows of the fault matrix and its recorded calls to the
    controller. Elsewhere (the controller, or a run in one process): every recorded call must be in the
    contract ledger (tests/contracts), or the run fails."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_matrix"] = [list(row) for row in _fault_matrix() or []]
        workeroutput["recorded_calls"] = [[s, m, p, [list(h) for h in hs]] for s, m, p, hs in _recorded_calls()]
        return
    from contracts.ledger import unledgered

    calls = _recorded_calls()
    dump = os.environ.get("CD4ML_RECORDED_CALLS")
    if dump:
        Path(dump).write_text(json.dumps([[s, m, p, dict(hs)] for s, m, p, hs in sorted(calls)], indent=1))
    missing = unledgered(calls)
    if missing:
        session.config._cd4ml_unledgered = missing
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_WorkerRows(), "cd4ml-fault-matrix-rows")


class _WorkerRows:
    """On the controller: the rows each worker handed over, into the one table the summary prints."""

    def pytest_testnodedown(self, node, error):
        rows = getattr(node, "workeroutput", {}).get("fault_matrix", [])
        matrix = _fault_matrix()
        if matrix is not None:
            matrix.extend(tuple(row) for row in rows)
        RECORDED_CALLS.update((s, m, p, tuple(tuple(h) for h in hs))
                              for s, m, p, hs in getattr(node, "workeroutput", {}).get("recorded_calls", []))


def pytest_terminal_summary(terminalreporter, config):
    """The calls no ledger entry describes (they fail the run), and the smoke fault matrix, as a table:
    every injected fault and the checks that caught it."""
    missing = getattr(config, "_cd4ml_unledgered", [])
    if missing:
        terminalreporter.section("calls not in the contract ledger (tests/contracts): the run fails", red=True)
        terminalreporter.write_line("Add each, with its evidence at the pinned version, or stop making it:")
        for line in missing:
            terminalreporter.write_line(f"  {line}")
    FAULT_MATRIX = _fault_matrix()
    if not FAULT_MATRIX:
        return
    terminalreporter.section("smoke fault matrix")
    terminalreporter.write_line(f"{'edge / service':<30} {'fault':<30} {'verdict':<8} failing checks")
    for edge, fault, failed, verdict in sorted(FAULT_MATRIX):
        terminalreporter.write_line(f"{edge:<30} {fault:<30} {verdict:<8} {failed}")
