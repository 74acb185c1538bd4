"""The real Gitea (1.27.3, built from the Go module proxy by tests/gitea/build.sh) started with the
configuration the kit gives the official chart: the `gitea.config` sections of the kit's values, plus
what the chart adds itself when valkey and the databases are off (templates/_helpers.tpl
`gitea.inline_configuration.defaults`: INSTALL_LOCK, a memory session and cache, the level queue, the db
issue indexer), and the admin made as the chart's init script makes it (templates/gitea/init.yaml
`configure_gitea.sh`: `gitea migrate`, then `gitea admin user create --admin ... --must-change-password=false`).

What differs from the pod: paths and the listening address are local, the process runs as this
machine's user (Gitea refuses root unless told it is meant), and app.ini is written here rather than by
the chart's environment-to-ini step.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from infra.polling import Observation, poll_until

VERSION = "1.27.3"
BINARY = Path(os.environ.get("CD4ML_GITEA_BIN", Path.home() / ".cache" / "cd4ml" / "gitea" / f"gitea-{VERSION}"))
WHY_ABSENT = (f"the real Gitea {VERSION} is not built here ({BINARY}): `make gitea` builds it from the Go module "
              "proxy in about 5 minutes (tests/gitea/build.sh)")
CHART_DEFAULTS = {
    "security": {"INSTALL_LOCK": "true"},
    "session": {"PROVIDER": "memory"},
    "cache": {"ADAPTER": "memory"},
    "queue": {"TYPE": "level"},
    "indexer": {"ISSUE_INDEXER_TYPE": "db"},
}


def available() -> bool:
    return BINARY.is_file() and os.access(BINARY, os.X_OK)


@dataclass
class RunningGitea:
    url: str
    work: Path
    process: subprocess.Popen[bytes]

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0


def app_ini(config: dict[str, Any], work: Path, port: int) -> str:
    sections: dict[str, dict[str, Any]] = {name: dict(keys) for name, keys in CHART_DEFAULTS.items()}
    for name, keys in config.items():
        sections.setdefault(name, {}).update(keys)
    local = {
        "server": {"HTTP_ADDR": "127.0.0.1", "HTTP_PORT": port, "APP_DATA_PATH": work / "data"},
        "database": {"PATH": work / "data" / "gitea.db"},
        "repository": {"ROOT": work / "repos"},
        "log": {"MODE": "console", "LEVEL": "Warn"},
    }
    for name, keys in local.items():
        sections.setdefault(name, {}).update(keys)
    lines = ["RUN_MODE = prod", f"WORK_PATH = {work}", "I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true"]
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {str(value).lower() if isinstance(value, bool) else value}" for key, value in keys.items()]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gitea(values: dict[str, Any], work: Path, admin: tuple[str, str]) -> Iterator[RunningGitea]:
    """Gitea with the kit's chart values, its admin made as the chart's init script makes it."""
    port = _free_port()
    (work / "custom" / "conf").mkdir(parents=True, exist_ok=True)
    ini = work / "custom" / "conf" / "app.ini"
    ini.write_text(app_ini(values["gitea"]["config"], work, port))
    env = {**os.environ, "GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT": "true", "HOME": str(work)}
    base = [str(BINARY), "--work-path", str(work), "--config", str(ini)]
    subprocess.run([*base, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    subprocess.run([*base, "admin", "user", "create", "--admin", "--username", admin[0], "--password", admin[1],
                    "--email", values["gitea"]["admin"]["email"], "--must-change-password=false"],
                   env=env, check=True, capture_output=True, timeout=60)
    log = (work / "web.log").open("wb")
    process = subprocess.Popen([*base, "web"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def answers() -> Observation[bool]:
        if process.poll() is not None:
            raise RuntimeError(f"Gitea exited ({process.returncode}): {(work / 'web.log').read_text()[-2000:]}")
        try:
            answer = requests.get(f"{url}/api/healthz", timeout=2)  # anonymous: sign-in is required for the rest
            return Observation(answer.status_code == 200, True, f"HTTP {answer.status_code}")
        except requests.ConnectionError as refused:
            return Observation(False, True, str(refused))

    try:
        poll_until(answers, what=f"Gitea at {url}/api/healthz", timeout=60)
        yield RunningGitea(url, work, process)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
