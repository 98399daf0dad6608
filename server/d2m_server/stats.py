"""Counters and rate-limited logging for bad input.

Bad input never stops the music: it is counted under a named reason and
logged at most once per :data:`LOG_INTERVAL_S` per reason, with the count of
what was suppressed in between.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

#: Minimum seconds between two log lines for the same reason.
LOG_INTERVAL_S = 5.0

log = logging.getLogger("d2m")


class InputStats:
    """Named counters of rejected input plus a rate-limited warning log."""

    def __init__(self, name: str, *, interval_s: float = LOG_INTERVAL_S, clock=time.monotonic):
        self.name = name
        self.counts: Counter[str] = Counter()
        self.accepted = 0
        self._interval = interval_s
        self._clock = clock
        self._last_logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def ok(self, n: int = 1) -> None:
        self.accepted += n

    def reject(self, reason: str, detail: str = "") -> None:
        """Count one rejected item under ``reason``; log it unless logged recently."""
        self.counts[reason] += 1
        now = self._clock()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self._interval:
            self._suppressed[reason] += 1
            return
        extra = self._suppressed.pop(reason, 0)
        more = f" ({extra} more since last report)" if extra else ""
        log.warning("%s: %s%s%s", self.name, reason, f": {detail}" if detail else "", more)
        self._last_logged[reason] = now

    @property
    def rejected(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> dict:
        return {"accepted": self.accepted, "rejected": self.rejected, "by_reason": dict(self.counts)}
