"""One structured log line per state change, never one per request.

Components (pool, cache breaker) report their state on every call they like; `StateLog`
logs one line (fields: component, from, to, and the caller's) only when the state differs
from the last one it saw, so an outage under load logs two lines (down, up), not thousands.
"""

from __future__ import annotations

import logging
import threading
from typing import Any


class StateLog:
    """Remembers a component's last state and logs transitions as one JSON object per line."""

    def __init__(self, component: str, initial: str, logger: logging.Logger | None = None) -> None:
        self.component = component
        self._state = initial
        self._lock = threading.Lock()
        self._logger = logger or logging.getLogger(f"runtime.{component}")

    @property
    def state(self) -> str:
        return self._state

    def transition(self, state: str, level: int = logging.INFO, **fields: Any) -> bool:
        """Record `state`; log one line and return True only if it is a change."""
        with self._lock:
            if state == self._state:
                return False
            previous, self._state = self._state, state
        record = {"component": self.component, "from": previous, "to": state, **fields}
        # The structured part goes to `fields` (runtime/telemetry/logs.py puts it in the line).
        self._logger.log(
            level, "%s: %s -> %s", self.component, previous, state, extra={"fields": record}
        )
        return True
