"""Cooperative cancellation and a work budget for one decode (one request in the service).

Decoding runs in worker threads that Python cannot interrupt, so the packet and frame loops
of models.frames call `check()` (or `charge()`) between packets: once the request's deadline
has passed, its client has gone away, the service drains, or it has decoded more pixels than
its budget allows, the next call raises and the thread stops within one packet's work.
"""

from __future__ import annotations

import threading
import time


class DecodeCancelled(Exception):
    """The decode was stopped: `reason` is "deadline", "client", "drain" or "budget"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or f"decode cancelled ({reason})")
        self.reason = reason


class DecodeBudgetExceeded(DecodeCancelled):
    """The decode needed more pixels than its budget (a client-side limit: 413 in the service)."""

    def __init__(self, spent: int, budget: int) -> None:
        super().__init__(
            "budget", f"decoding needed more than {budget / 1e6:.0f} megapixels of frames (spent {spent / 1e6:.0f})"
        )
        self.spent = spent
        self.budget = budget


class CancelToken:
    """Set from any thread with `cancel(reason)`; polled by decode loops with `check()`.

    deadline: time.monotonic() value after which check() raises ("deadline").
    max_pixels: decode budget, in pixels of coded frames sent to a decoder (None: no budget).
    """

    def __init__(self, deadline: float | None = None, max_pixels: int | None = None) -> None:
        self.deadline = deadline
        self.max_pixels = max_pixels
        self.pixels = 0  # decoded so far (several decoder threads may add: a lock keeps it exact)
        self._reason: str | None = None
        self._lock = threading.Lock()

    def cancel(self, reason: str) -> None:
        """Stop the work at its next check; the first reason given is kept."""
        if self._reason is None:
            self._reason = reason

    @property
    def reason(self) -> str | None:
        if self._reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            return "deadline"
        return self._reason

    @property
    def cancelled(self) -> bool:
        return self.reason is not None

    def check(self) -> None:
        reason = self.reason
        if reason is not None:
            raise DecodeCancelled(reason)

    def charge(self, pixels: int) -> None:
        """Count `pixels` of decode work, then check (the budget included)."""
        self.check()
        if self.max_pixels is None:
            return
        with self._lock:
            self.pixels += pixels
            spent = self.pixels
        if spent > self.max_pixels:
            raise DecodeBudgetExceeded(spent, self.max_pixels)


def check(cancel: CancelToken | None) -> None:
    """check() on an optional token (the training and benchmark paths pass none)."""
    if cancel is not None:
        cancel.check()
