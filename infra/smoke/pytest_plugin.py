"""`pytest --smoke`: the smoke checks as pytest tests, one per check, for CI systems that read pytest.

    pytest --smoke [--smoke-stack local] [--smoke-endpoint SERVICE=URL ...] [--smoke-only SERVICE ...]

With --smoke, the collected tests are replaced by the checks; they run once, concurrently, and each
test reports its check: pass, skip (with the reason) or fail (with the diagnosis). Registered as a
pytest11 entry point, so it is available wherever the kit is installed.
"""

from __future__ import annotations

import os

import pytest

from infra.smoke.core import CheckResult


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cd4ml-smoke", "CD4ML platform smoke checks")
    group.addoption("--smoke", action="store_true", help="run the platform's smoke checks instead of the tests")
    group.addoption("--smoke-stack", default=os.environ.get("CD4ML_STACK", "local"), help="stack (CD4ML_STACK)")
    group.addoption("--smoke-endpoint", action="append", default=[], metavar="SERVICE=URL",
                    help="direct mode: reach SERVICE at URL; without it, through the stack's kube context")
    group.addoption("--smoke-only", action="append", default=[], metavar="SERVICE", help="check only SERVICE")
    group.addoption("--smoke-timeout", type=float, default=60.0, help="deadline of each check, in seconds")


class SmokeCheckFailed(Exception):
    def __init__(self, result: CheckResult):
        self.result = result
        super().__init__(result.detail)


class SmokeItem(pytest.Item):
    def __init__(self, *, check_name: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.check_name = check_name

    def runtest(self) -> None:
        result = _results(self.config)[self.check_name]
        if result.status == "skip":
            pytest.skip(result.detail)
        if result.status == "fail":
            raise SmokeCheckFailed(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SmokeCheckFailed):
            d = excinfo.value.result.diagnosis
            if d:
                return (f"{self.check_name} failed\n  component: {d.component}\n  tried:     {d.endpoint}\n"
                        f"  expected:  {d.expected}\n  saw:       {d.seen}\n  likely:    {d.likely_cause}")
            return excinfo.value.result.detail
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, f"smoke check {self.check_name}"


_RESULTS = pytest.StashKey[dict]()


def _results(config: pytest.Config) -> dict[str, CheckResult]:
    if _RESULTS not in config.stash:
        from infra.smoke.runner import smoke_run

        results = smoke_run(config.getoption("--smoke-stack"), config.getoption("--smoke-endpoint"),
                            config.getoption("--smoke-only"), config.getoption("--smoke-timeout"))
        config.stash[_RESULTS] = {r.name: r for r in results}
    return config.stash[_RESULTS]


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    """With --smoke nothing on disk is collected: the checks are the tests."""
    return True if config.getoption("--smoke") else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if not config.getoption("--smoke"):
        return
    from infra.smoke.runner import select

    items[:] = [SmokeItem.from_parent(session, name=check.name, check_name=check.name)
                for check in select(config.getoption("--smoke-only"))]
