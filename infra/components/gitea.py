"""The Gitea component: the git server (official chart), then the Job that seeds the ready repositories."""

from __future__ import annotations

from infra.components.base import ServiceComponent


class Gitea(ServiceComponent):
    """The in-cluster git server; outputs its URL. Model: infra/platform/gitea.py."""

    TYPE = "cd4ml:platform:Gitea"
