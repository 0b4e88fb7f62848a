"""A logger that says the same thing at most once a minute.

A gateway serves thousands of calls a second; when Verdict is down, each would warn. The call
goes on unchanged (Verdict never fails a call), and the log gets one line per minute and kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

DEFAULT_EVERY_S = 60.0


class ThrottledLog(logging.LoggerAdapter[logging.Logger]):
    """Passes a message on when its format string was not logged in the last `every_s` seconds
    (one key per format string, so different troubles each get their line); counts the rest."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = DEFAULT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logger, {})
        self._every_s = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.suppressed = 0
        """Messages not logged because the same kind was logged less than `every_s` ago."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        now = self._clock()
        key = str(msg)
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._every_s:
                self.suppressed += 1
                return
            self._last[key] = now
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs
