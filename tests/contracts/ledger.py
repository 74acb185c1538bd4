"""The contract ledger: every call the kit makes to a service that cannot run here (GoCD, Elasticsearch,
Kibana, Grafana), each with the evidence, in the service's source at the version the kit pins, that the
real service answers it as the kit expects. One YAML file per service beside this module.

The stand-ins record every call they receive (tests/standins/http_standin.py); at the end of a run
`unledgered` names each recorded call no entry describes, and the run fails (tests/conftest.py). So a new
call, or a call with a different header, cannot land without its entry and its evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

LEDGER_DIR = Path(__file__).parent
ANY = "*"
"""A header value in an entry that means: present, whatever its value (kbn-xsrf, If-Match)."""


@dataclass(frozen=True)
class Evidence:
    file: str
    lines: str
    says: str


@dataclass(frozen=True)
class Entry:
    service: str
    method: str
    path: str
    """A template: `{name}` stands for one path segment."""
    headers: dict[str, str | list[str]]
    """The contract headers the call sends: a value, a list of the values it may send, or `*` (any value)."""
    callers: tuple[str, ...]
    answers: dict[int, str]
    evidence: tuple[Evidence, ...]

    @property
    def pattern(self) -> re.Pattern:
        parts = re.split(r"(\{[a-z_]+\})", self.path)
        return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$")

    def describes(self, service: str, method: str, path: str, headers: Iterable[tuple[str, str]]) -> bool:
        """Same service, method and path, and exactly the headers the entry names (with its values)."""
        sent = {name.lower(): value for name, value in headers}
        wanted = {name.lower(): value for name, value in self.headers.items()}
        return (service == self.service and method == self.method and bool(self.pattern.match(path))
                and sent.keys() == wanted.keys()
                and all(value == ANY or sent[name] in ([value] if isinstance(value, str) else value)
                        for name, value in wanted.items()))


@dataclass(frozen=True)
class Ledger:
    service: str
    repository: str
    version: str
    source: str
    """Where the evidence was read: a tag, or the commit of the stored copy when the tag could not be fetched."""
    entries: tuple[Entry, ...]
    settings: tuple[dict, ...]


def load(path: Path) -> Ledger:
    data = yaml.safe_load(path.read_text())
    service = data["service"]
    entries = tuple(
        Entry(service=service, method=c["method"], path=c["path"], headers=dict(c.get("headers") or {}),
              callers=tuple(c["callers"]), answers={int(k): v for k, v in (c.get("answers") or {}).items()},
              evidence=tuple(Evidence(**e) for e in c["evidence"]))
        for c in data.get("calls") or [])
    upstream = data["upstream"]
    return Ledger(service, upstream["repository"], upstream["version"], upstream["source"], entries,
                  tuple(data.get("settings") or []))


def ledgers() -> dict[str, Ledger]:
    return {ledger.service: ledger for ledger in map(load, sorted(LEDGER_DIR.glob("*.yaml")))}


def unledgered(calls: Iterable[tuple[str, str, str, tuple[tuple[str, str], ...]]]) -> list[str]:
    """Each recorded call (service, method, path, headers) no entry describes, as a line to print."""
    entries = [entry for ledger in ledgers().values() for entry in ledger.entries]
    return sorted({
        f"{service}: {method} {path} {dict(headers)}" for service, method, path, headers in calls
        if not any(entry.describes(service, method, path, headers) for entry in entries)})
