"""Fixtures for fault-injection tests: real daphne processes, and a Redis of the test's own.

The shared Redis on 6379 serves other test runs at the same time, so a test that kills or
pauses Redis starts its own `redis-server` (the `private_redis` fixture) and points its
servers at it with `servers_on(private_redis, n)`. Everything else comes from the live-test
fixtures, imported here so that both packages start servers the same way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.live.conftest import (  # noqa: F401  (fixtures, registered by being imported)
    DaphneServer,
    _die_with_parent,
    daphne_servers,
    login_cookie,
    ws_connect,
)

REDIS_START_SECONDS = 10.0


def free_port() -> int:
    # redis-server binds the port itself; unlike daphne it cannot be handed a socket.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrivateRedis:
    """One redis-server on a loopback port of its own, which the test may kill, pause
    and restart (empty, on the same port) without disturbing anybody else."""

    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _logs: list = field(default_factory=list, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = self.log_path.open("ab")
        self._logs.append(log)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.log_path.parent),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.starts += 1
        self._wait_ready()

    def _wait_ready(self) -> None:
        import redis

        deadline = time.monotonic() + REDIS_START_SECONDS
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server on {self.port} exited: {self.log_path.read_text(errors='replace')}")
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return
                time.sleep(0.02)
        finally:
            client.close()
        pytest.fail(f"redis-server on {self.port} did not answer within {REDIS_START_SECONDS} s")

    def kill(self) -> None:
        """SIGKILL: a crash, losing everything Redis held (it persists nothing)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # A paused process cannot act on SIGTERM; SIGKILL works on it either way.
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        for log in self._logs:
            log.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, started; stopped when the test ends."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(port=free_port(), log_path=tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


ServersOn = Callable[..., list[DaphneServer]]


@pytest.fixture
def servers_on(daphne_servers, monkeypatch: pytest.MonkeyPatch) -> ServersOn:  # noqa: F811
    """`servers_on(redis, n, env=None)` starts n daphne processes on `redis` (a PrivateRedis).

    The live fixture takes its Redis from CHATSITE_TEST_REDIS_URL; pointing that at the
    private server also makes its reachability check and its key clean-up use it.
    """

    def start(redis: PrivateRedis, n: int = 2, env: dict[str, str] | None = None) -> list[DaphneServer]:
        monkeypatch.setenv("CHATSITE_TEST_REDIS_URL", redis.url)
        return daphne_servers(n, redis=True, env=env)

    return start


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            # Each test here starts processes and waits on real time: give it a hard bound
            # so a hung fault leaves a failure, not a stuck run.
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(int(os.environ.get("CHATSITE_FAULT_TEST_TIMEOUT", "120"))))
