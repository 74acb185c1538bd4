"""What the lifecycle commands raise when a step cannot go on."""

from __future__ import annotations


class LifecycleError(RuntimeError):
    """A step of `up` that cannot go on; the message says what is missing and what to do."""
