"""Log lines for operators: one format for Django's, daphne's, Twisted's and our own.

daphne calls `logging.basicConfig` with a format of its own before it imports the
application, and sends Twisted's log nowhere (or, at verbosity 2 and up, to the
`daphne.server` logger). Django applies LOGGING when the application is imported
(`django.setup()`), through LOGGING_CONFIG, which names `configure` below: it replaces
daphne's root handler with ours, and hands Twisted's log to the standard `logging`
module under the logger name `twisted`, so that every line has the same shape.

Every line carries a timestamp (ISO 8601, UTC), the level, the logger's name and the
process id: with several daphne processes writing to one journal, the pid tells them
apart. CHATSITE_LOG_JSON=1 writes one JSON object per line instead, for log shippers.
"""

from __future__ import annotations

import json
import logging
import logging.config
import threading
import time
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

_twisted_observed = False


def configure(logging_settings: dict[str, Any]) -> None:
    """LOGGING_CONFIG: apply LOGGING, then route Python warnings and Twisted's log
    through it."""
    logging.config.dictConfig(logging_settings)
    logging.captureWarnings(True)
    _observe_twisted()


def _observe_twisted() -> None:
    global _twisted_observed
    if _twisted_observed:
        return
    try:
        from twisted.logger import STDLibLogObserver, globalLogPublisher
    except ImportError:  # management commands run without daphne's server stack
        return
    # Added to the publisher itself rather than through globalLogBeginner, which daphne
    # calls later (with an observer that drops everything): ours stays beside it.
    globalLogPublisher.addObserver(STDLibLogObserver(name="twisted"))
    _twisted_observed = True


def iso_utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`2026-01-02T03:04:05.678Z WARNING rooms.consumers [4242] message`, then the
    traceback, if any, on the lines that follow."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return iso_utc(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, pid, message, and exc_info (the
    traceback as text) when there is one. Newlines inside stay escaped in the string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


_REDIS_MODULES = ("redis", "channels_redis")


def is_redis_error(exc: BaseException | None) -> bool:
    """True when the exception, or one it was raised from or while handling, comes
    from the Redis client or the Redis channel layer."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        module = type(exc).__module__ or ""
        if module.split(".", 1)[0] in _REDIS_MODULES:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class RedisErrorThrottle(logging.Filter):
    """Lets one Redis traceback per logger and message through every `seconds`.

    While Redis is down every connection, publish and presence beat fails the same way,
    and a traceback for each would bury everything else (and fill the disk). The first
    of a kind goes through; the rest within `seconds` are counted and dropped; the next
    one after that goes through saying how many were left out. Lines without a Redis
    exception are never held back. `seconds=0` lets everything through.
    """

    def __init__(self, seconds: float = 60.0, clock=time.monotonic) -> None:
        super().__init__()
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        # (logger, message template) -> [when the last one went through, dropped since]
        self._kinds: dict[tuple[str, str], list[float | int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if self.seconds <= 0 or not record.exc_info or not is_redis_error(record.exc_info[1]):
            return True
        key = (record.name, str(record.msg))
        now = self.clock()
        with self._lock:
            kind = self._kinds.get(key)
            if kind is not None and now - kind[0] < self.seconds:
                kind[1] += 1
                return False
            suppressed = kind[1] if kind is not None else 0
            self._kinds[key] = [now, 0]
        if suppressed:
            record.msg = (
                f"{record.getMessage()} ({suppressed} more like this suppressed in the last {now - kind[0]:.0f} s)"
            )
            record.args = None
        return True
