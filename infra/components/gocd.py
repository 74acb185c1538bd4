"""The GoCD component: server and static agents (gocd/gocd chart) and the agents' ServiceAccount."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class GoCD(ServiceComponent):
    """GoCD; outputs the server URL (…/go). Model: infra/platform/gocd.py."""

    TYPE = "cd4ml:platform:GoCD"
