"""Settings tests share: a workshop is published (participants open their pages from their own
laptops; infra/config/rules.py refuses participants without ingress), as the shipped workshop stack is."""

from __future__ import annotations

from typing import Any

PUBLISHED = {"cd4ml:profile": "cluster", "cd4ml:exposure": "ingress", "cd4ml:domain": "workshop.example.com",
             "cd4ml:tlsIssuer": "self-signed"}


def workshop(**settings: Any) -> dict[str, Any]:
    """A workshop's raw stack settings: published, plus the given `cd4ml:` keys (participants=3, ...)."""
    return {**PUBLISHED, **{f"cd4ml:{key}": value for key, value in settings.items()}}


def set_options(**settings: Any) -> list[str]:
    """The same settings as the CLI's `--set` options (without the stack file's participants)."""
    return [option for key, value in {**{k.removeprefix("cd4ml:"): v for k, v in PUBLISHED.items()},
                                      **settings}.items() for option in ("--set", f"{key}={value}")]
