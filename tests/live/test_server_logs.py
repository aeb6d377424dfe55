"""What a real daphne process writes: every line in the project's format, daphne's own
and Twisted's included (daphne sets logging up before Django does)."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>[\w.]+) "
    r"\[(?P<pid>\d+)\] "
)
# Verbosity 0, as the systemd units run daphne: at 1 daphne also writes its own access
# log straight to stdout, past logging (see docs/deploy.md, "Logs").
QUIET = ["-v", "0"]
VERBOSE_LOGS = {"DJANGO_LOG_LEVEL": "INFO"}


def log_lines(server) -> list[str]:
    server.stop()
    return [line for line in server.output().splitlines() if line.strip()]


def test_every_line_is_text_with_timestamp_level_logger_and_pid(daphne_servers):
    (server,) = daphne_servers(1, env=VERBOSE_LOGS, args=QUIET)
    server.get("/healthz")

    lines = log_lines(server)
    matches = [TEXT_LINE.match(line) for line in lines]

    assert lines and all(matches), "\n".join(line for line, m in zip(lines, matches, strict=True) if not m)
    assert {int(m["pid"]) for m in matches} == {server.pid}
    loggers = {m["logger"] for m in matches}
    assert {"daphne.cli", "daphne.server", "twisted"} <= loggers


def test_json_lines_for_log_shippers(daphne_servers):
    (server,) = daphne_servers(1, env={**VERBOSE_LOGS, "CHATSITE_LOG_JSON": "1"}, args=QUIET)
    server.get("/healthz")

    entries = [json.loads(line) for line in log_lines(server)]

    assert entries
    assert all({"ts", "level", "logger", "pid", "message"} <= set(e) for e in entries)
    assert {e["pid"] for e in entries} == {server.pid}
    assert {"daphne.cli", "daphne.server", "twisted"} <= {e["logger"] for e in entries}
    # Twisted's access line for the request above, through the same handler.
    assert any(e["logger"] == "twisted" and "GET /healthz" in e["message"] for e in entries)
