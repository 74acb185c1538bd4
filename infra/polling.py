"""Waiting without sleeping blind: poll a probe with backoff until it says yes or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """What was awaited, for how long, and the last thing seen — the start of every diagnosis."""

    def __init__(self, what: str, timeout: float, last_seen: str):
        self.what, self.timeout, self.last_seen = what, timeout, last_seen
        super().__init__(f"gave up waiting for {what} after {timeout:.0f}s; last seen: {last_seen}")


@dataclass
class Observation(Generic[T]):
    """One look: whether it is done, the value, and a short description of what was seen."""

    done: bool
    value: T | None = None
    seen: str = ""


def poll_until(probe: Callable[[], Observation[T]], *, what: str, timeout: float,
               first_interval: float = 0.1, factor: float = 1.7, max_interval: float = 3.0,
               clock: Callable[[], float] = time.monotonic, pause: Callable[[float], None] = time.sleep) -> T | None:
    """Call `probe` until it reports done; back off between looks, never past the deadline.
    A probe that raises counts as 'not yet', and what it raised is what was last seen."""
    deadline = clock() + timeout
    interval = first_interval
    last_seen = "nothing yet"
    while True:
        try:
            observation = probe()
            if observation.done:
                return observation.value
            last_seen = observation.seen or "not ready"
        except Exception as failure:  # noqa: BLE001 - any failure to look is itself an observation
            last_seen = f"{type(failure).__name__}: {failure}"
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimeout(what, timeout, last_seen)
        pause(min(interval, remaining))
        interval = min(interval * factor, max_interval)
