"""Kibana's status API as the kit reads it (Kibana 8.19; evidence in tests/contracts/kibana.yaml).
Standard library only: mounted into the Kibana configure Job beside infra/configure/kibana.py."""

from __future__ import annotations

from typing import Any

NEEDED_CORE_SERVICES = ("elasticsearch", "savedObjects")
"""What the kit needs of Kibana: its Elasticsearch connection and saved objects (data views are saved
objects). Not the overall level: that is the worst of every plugin's (kibana status_service.ts,
get_summary_status.ts), and plugins such as the task manager report `degraded` on their own on a busy
laptop while the data views API works (tests/contracts/kibana.yaml)."""


def core_levels(body: Any) -> dict[str, str | None]:
    """The levels of the core services the kit needs, from an /api/status body (None: not reported)."""
    core = ((body.get("status") or {}).get("core") or {}) if isinstance(body, dict) else {}
    return {service: (core.get(service) or {}).get("level") for service in NEEDED_CORE_SERVICES}
