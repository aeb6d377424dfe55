"""Log lines: the text format, JSON lines, and the throttle on Redis tracebacks."""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
from pathlib import Path

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured

from chatsite.logging import JsonFormatter, RedisErrorThrottle, TextFormatter

SETTINGS = Path(__file__).resolve().parents[1] / "chatsite" / "settings.py"
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>[\w.]+) "
    r"\[(?P<pid>\d+)\] (?P<message>.*)$"
)


def record(message="Publish failed for room %s", *args, name="rooms.realtime", exc=None, level=logging.ERROR):
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException as raised:
            exc_info = (type(raised), raised, raised.__traceback__)
    return logging.LogRecord(name, level, __file__, 1, message, args or None, exc_info)


def redis_down() -> Exception:
    return redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# Formats.


def test_text_lines_carry_utc_timestamp_level_logger_and_pid():
    line = TextFormatter().format(record("Room %s is busy", 7, level=logging.WARNING))

    match = TEXT_LINE.match(line)
    assert match, line
    assert (match["logger"], match["message"]) == ("rooms.realtime", "Room 7 is busy")
    assert int(match["pid"]) == os.getpid()


def test_text_lines_put_the_traceback_after_the_line():
    first, *rest = TextFormatter().format(record(exc=ValueError("bad"))).splitlines()

    assert TEXT_LINE.match(first)
    assert rest[0] == "Traceback (most recent call last):" and rest[-1] == "ValueError: bad"


def test_json_lines_are_one_object_with_the_traceback_as_text():
    line = JsonFormatter().format(record("Room %s: %s", 7, "línea\nnueva", exc=ValueError("bad")))

    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"ts", "level", "logger", "pid", "message", "exc_info"}
    assert (entry["level"], entry["logger"], entry["message"]) == ("ERROR", "rooms.realtime", "Room 7: línea\nnueva")
    assert isinstance(entry["pid"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert entry["exc_info"].endswith("ValueError: bad")


def test_json_lines_without_an_exception_have_no_exc_info():
    assert "exc_info" not in json.loads(JsonFormatter().format(record("plain", level=logging.INFO)))


# The Redis throttle.


def test_one_redis_traceback_per_logger_and_message_goes_through_per_window():
    clock = Clock()
    throttle = RedisErrorThrottle(seconds=60, clock=clock)

    first = throttle.filter(record("Publish failed for room %s", 1, exc=redis_down()))
    dropped = [throttle.filter(record("Publish failed for room %s", n, exc=redis_down())) for n in range(5)]
    clock.now += 61
    later = record("Publish failed for room %s", 9, exc=redis_down())
    passed_later = throttle.filter(later)

    assert first is True
    assert dropped == [False] * 5
    assert passed_later is True
    assert later.getMessage() == "Publish failed for room 9 (5 more like this suppressed in the last 61 s)"


def test_the_throttle_keeps_kinds_apart_and_never_holds_back_other_errors():
    throttle = RedisErrorThrottle(seconds=60, clock=Clock())
    throttle.filter(record("Publish failed for room %s", 1, exc=redis_down()))

    assert throttle.filter(record("Presence beat failed", exc=redis_down())) is True
    assert throttle.filter(record("Publish failed for room %s", 1, name="rooms.presence", exc=redis_down())) is True
    assert throttle.filter(record("Publish failed for room %s", 1, exc=ValueError("not Redis"))) is True
    assert throttle.filter(record("Publish failed for room %s", 1)) is True


def test_an_error_raised_while_handling_a_redis_error_counts_as_one():
    throttle = RedisErrorThrottle(seconds=60, clock=Clock())

    def chained():
        try:
            raise redis_down()
        except redis.exceptions.ConnectionError as exc:
            raise RuntimeError("limits unavailable") from exc

    first = record("Limits unavailable", exc=None)
    try:
        chained()
    except RuntimeError as exc:
        first.exc_info = (type(exc), exc, exc.__traceback__)
    assert throttle.filter(first) is True
    second = record("Limits unavailable")
    second.exc_info = first.exc_info
    assert throttle.filter(second) is False


def test_a_throttle_of_zero_seconds_lets_everything_through():
    throttle = RedisErrorThrottle(seconds=0, clock=Clock())

    assert all(throttle.filter(record(exc=redis_down())) for _ in range(3))


# Settings.


def load_settings(monkeypatch, **env) -> dict:
    for name in ("REDIS_URL", "DATABASE_URL", "DJANGO_DEBUG", "DJANGO_HTTPS", "CHATSITE_LOG_JSON", "DJANGO_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_settings_pick_json_lines_and_the_throttle_window(monkeypatch):
    settings = load_settings(monkeypatch, CHATSITE_LOG_JSON="1", CHATSITE_LOG_REDIS_ERRORS_EVERY_SECONDS="5")

    assert settings["LOGGING_CONFIG"] == "chatsite.logging.configure"
    assert settings["LOGGING"]["handlers"]["console"]["formatter"] == "json"
    assert settings["LOGGING"]["filters"]["redis_errors"]["seconds"] == 5


def test_settings_default_to_text_lines(monkeypatch):
    assert load_settings(monkeypatch)["LOGGING"]["handlers"]["console"]["formatter"] == "text"


@pytest.mark.parametrize("env", [{"DJANGO_LOG_LEVEL": "LOUD"}, {"CHATSITE_LOG_JSON": "sometimes"}])
def test_junk_log_settings_fail_at_startup(monkeypatch, env):
    with pytest.raises(ImproperlyConfigured):
        load_settings(monkeypatch, **env)
