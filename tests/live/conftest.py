"""Fixtures for tests that run real daphne processes against the pytest-django test database.

The servers are separate processes, so they only see rows the test has committed: tests
that use `daphne_servers` run in transactional mode (the fixture asks for
`transactional_db`; mark them `django_db(transaction=True)` too, to say so). On SQLite the
test database must be a file the servers can open: set CHATSITE_TEST_DATABASE_NAME.

Several servers share a channel layer and presence through Redis. Each test gets its own
Redis key prefix, so tests never see each other's groups, presence or leftovers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import pytest
import pytest_asyncio

from tests.live.clients import LiveClient, session_cookie_for
from tests.live.clients import ws_connect as open_ws

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
HEALTHZ_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


def redis_url_for_servers() -> str:
    """The Redis that servers started by the tests use.

    CHATSITE_TEST_REDIS_URL lets a run give the servers Redis while the test process
    itself keeps the in-memory channel layer (REDIS_URL unset).
    """
    return os.environ.get("CHATSITE_TEST_REDIS_URL") or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL


def services_required() -> bool:
    """When set (scripts/test sets it), a missing service fails the test instead of skipping it."""
    return os.environ.get("CHATSITE_TEST_REQUIRE_SERVICES", "") not in ("", "0")


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (CHATSITE_TEST_REQUIRE_SERVICES is set, so this is not a skip)")
    pytest.skip(reason)


def redis_unreachable_reason(url: str) -> str | None:
    """Why Redis at `url` cannot be used, or None when it answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # any failure means "not usable", whatever redis-py raises
        return f"Redis at {url} is unreachable: {exc.__class__.__name__}: {exc}"
    finally:
        client.close()
    return None


def require_redis() -> str:
    """The servers' Redis URL; skips the test (or fails, see services_required) if Redis is down."""
    url = redis_url_for_servers()
    reason = redis_unreachable_reason(url)
    if reason:
        skip_or_fail(reason)
    return url


def database_url_for_servers() -> str:
    """A DATABASE_URL for the test database this pytest process is using right now.

    Read at fixture time: pytest-django has by then swapped the test database's name into
    the connection settings.
    """
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        if connection.is_in_memory_db():
            skip_or_fail(
                "live server tests need a SQLite test database file that server processes can open; "
                "set CHATSITE_TEST_DATABASE_NAME=/some/dir/test.sqlite3 (scripts/test does)"
            )
        return "sqlite:///" + str(Path(s["NAME"]).resolve())
    if connection.vendor == "postgresql":
        user = urllib.parse.quote(s.get("USER") or "", safe="")
        password = s.get("PASSWORD") or ""
        auth = f"{user}:{urllib.parse.quote(password, safe='')}@" if password else (f"{user}@" if user else "")
        # An empty host means the local Unix socket, for the servers as for this process.
        host = s.get("HOST") or ""
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{urllib.parse.quote(s['NAME'], safe='')}"
    pytest.fail(f"live server tests do not know how to share a {connection.vendor} database with server processes")


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel SIGKILLs it when pytest exits, however."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def listening_socket() -> socket.socket:
    """A loopback socket that is already bound and listening, handed to daphne with --fd.

    Handing over the socket, rather than picking a free port and letting daphne bind it
    later, leaves no window in which another process can take the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class DaphneServer:
    """One daphne process serving the project's ASGI application on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)
    name: str = ""

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return self.http_url

    @property
    def redis_prefix(self) -> str | None:
        return self.env.get("CHATSITE_REDIS_PREFIX") if self.env.get("REDIS_URL") else None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up, as in a crash or OOM kill."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(STOP_TIMEOUT_SECONDS)

    def terminate(self) -> None:
        """SIGTERM without waiting: daphne closes its connections and exits."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then wait; SIGKILL if it does not exit in time."""
        if not self.alive():
            return
        self.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_SECONDS)

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
        """A plain GET against the server: (status, body), for any status."""
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_healthy(self, timeout: float = HEALTHZ_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.alive():
                pytest.fail(
                    f"{self.name} exited with code {self.process.returncode} before /healthz answered; "
                    f"output:\n{self.output()}"
                )
            try:
                status, body = self.get("/healthz", timeout=2)
                if status == 200:
                    return
                last = f"HTTP {status}: {body[:300]!r}"
            except (OSError, urllib.error.URLError) as exc:
                last = f"{exc.__class__.__name__}: {exc}"
            time.sleep(0.1)
        pytest.fail(
            f"{self.name} did not answer GET /healthz with 200 within {timeout} s ({last}); output:\n{self.output()}"
        )


class DaphneServers(Protocol):
    def __call__(
        self,
        n: int = 1,
        redis: bool | None = None,
        env: dict[str, str] | None = None,
        *,
        application: str = ...,
        args: Sequence[str] = ...,
    ) -> list[DaphneServer]: ...


class _ServerFactory:
    def __init__(self, tmp_dir: Path) -> None:
        self.tmp_dir = tmp_dir
        self.redis_prefix = f"chatsite-test-{uuid.uuid4().hex[:12]}"
        self.redis_url: str | None = None
        self.servers: list[DaphneServer] = []
        self._logs: list[IO[bytes]] = []

    def __call__(
        self,
        n: int = 1,
        redis: bool | None = None,
        env: dict[str, str] | None = None,
        *,
        application: str = "chatsite.asgi:application",
        args: Sequence[str] = (),
    ) -> list[DaphneServer]:
        """Start `n` daphne processes sharing the test database; wait until all are healthy.

        `args` are extra daphne command-line options (e.g. `["--proxy-headers"]`).

        Redis is used when `redis` is True, or when it is None and n > 1 (several processes
        cannot share the in-memory channel layer). Every call within one test shares the
        test's Redis key prefix, so servers from separate calls see each other.
        """
        assert n >= 1
        use_redis = redis if redis is not None else n > 1
        if n > 1 and not use_redis:
            raise ValueError("several servers without Redis cannot see each other's events")
        server_env = self._base_env(use_redis)
        server_env.update(env or {})
        started = [self._spawn(server_env, application, args) for _ in range(n)]
        # Started together so that the processes' imports overlap; checked one by one.
        for server in started:
            server.wait_healthy()
        return started

    def _base_env(self, use_redis: bool) -> dict[str, str]:
        env = dict(os.environ)
        # The test run's own switches must not leak into the server as configuration.
        for name in ("CHATSITE_TEST_DATABASE_NAME", "REDIS_URL", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"):
            env.pop(name, None)
        env.update(
            {
                "DATABASE_URL": database_url_for_servers(),
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "chatsite.settings"),
                "ALLOWED_HOSTS": "127.0.0.1,localhost,[::1]",
                "CHATSITE_REDIS_PREFIX": self.redis_prefix,
                "PYTHONUNBUFFERED": "1",
                # SIGTERM drains a server's viewers over this long: a teardown that
                # finds viewers still open should not wait the production 10 s.
                "CHAT_DRAIN_SECONDS": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            }
        )
        if use_redis:
            self.redis_url = require_redis()
            env["REDIS_URL"] = self.redis_url
        return env

    def _spawn(self, env: dict[str, str], application: str, args: Sequence[str] = ()) -> DaphneServer:
        index = len(self.servers)
        sock = listening_socket()
        port = sock.getsockname()[1]
        log_path = self.tmp_dir / f"daphne-{index}-{port}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), *args, application],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
                # Its own process group, so a Ctrl-C aimed at pytest leaves the servers to
                # teardown; and dead with pytest however pytest dies, so that no orphan keeps
                # the test database open and blocks the next run's DROP DATABASE.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            sock.close()
        server = DaphneServer(port=port, process=process, log_path=log_path, env=env, name=f"daphne#{index} :{port}")
        self.servers.append(server)
        return server

    def teardown(self) -> None:
        # All at once: each takes a moment to shut down.
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        for log in self._logs:
            log.close()
        # Shown by pytest only when the test failed: what each server said.
        for server in self.servers:
            output = server.output()
            tail = output[-6000:]
            print(f"----- {server.name} (pid {server.pid}, exit {server.process.returncode}) -----")
            print(("[...]\n" if len(output) > len(tail) else "") + tail)
        if self.redis_url:
            self._delete_redis_keys()

    def _delete_redis_keys(self) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        with contextlib.suppress(Exception), client:
            keys = list(client.scan_iter(match=f"{self.redis_prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])


@pytest.fixture
def daphne_servers(transactional_db: None, tmp_path: Path) -> Iterator[DaphneServers]:
    """`daphne_servers(n, redis=None, env=None, args=())` starts n real daphne processes.

    Each serves chatsite.asgi on its own loopback port against this test's database, and
    with Redis (see `_ServerFactory.__call__`) under a key prefix of this test's own. All
    are stopped when the test ends; their output is printed then, so a failing test shows it.
    """
    factory = _ServerFactory(tmp_path)
    try:
        yield factory
    finally:
        factory.teardown()
        close_sync_to_async_connections()


def close_sync_to_async_connections() -> None:
    """Close the database connections that async test code opened through sync_to_async.

    They belong to asgiref's worker thread, not to the test's thread, so pytest-django
    never closes them; on PostgreSQL one left open makes DROP DATABASE fail at the end
    of the run ("is being accessed by other users").
    """
    import asyncio
    import threading

    from asgiref.sync import sync_to_async
    from django.db import connections

    # From a thread of its own, whose fresh loop cannot clash with one the test left
    # running here (Playwright's sync API keeps one); asgiref hands the call to the same
    # worker thread whichever thread asks.
    worker = threading.Thread(target=lambda: asyncio.run(sync_to_async(connections.close_all)()))
    worker.start()
    worker.join(30)


@pytest.fixture
def login_cookie(transactional_db: None) -> Callable[[AbstractBaseUser], dict[str, str]]:
    """`login_cookie(user)` stores a signed-in session for `user` and returns its cookie.

    The dict ({"name", "value", "domain", "path"}) suits Playwright's `add_cookies` as is.
    Call it from sync code; async code uses `ws_connect(..., user=user)`, which makes the
    session itself.
    """
    return session_cookie_for


WsConnect = Callable[..., Any]


@pytest_asyncio.fixture
async def ws_connect() -> AsyncIterator[WsConnect]:
    """`await ws_connect(server, slug, user=None, after=None)` -> LiveClient.

    See tests.live.clients.ws_connect for the keyword options (origin, cookie, headers).
    Clients still open when the test ends are closed.
    """
    clients: list[LiveClient] = []

    async def connect(*args: Any, **kwargs: Any) -> LiveClient:
        client = await open_ws(*args, **kwargs)
        clients.append(client)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            await client.close()


@pytest.fixture
def redis_url() -> str:
    """The Redis URL servers use; skips the test when Redis does not answer."""
    return require_redis()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Multi-process tests cannot do anything useful without Redis: skip before paying for
    # database setup and server start-up.
    if item.get_closest_marker("multiprocess") is not None:
        reason = redis_unreachable_reason(redis_url_for_servers())
        if reason:
            skip_or_fail(reason)


# Browser tests.


@pytest.fixture
def launch_browser(daphne_servers) -> Iterator[Callable[[], object]]:
    """`launch_browser()` starts headless Chromium (once) and returns the Browser."""
    from tests.live.browser_helpers import browser_launcher

    with browser_launcher() as launch:
        yield launch


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    # CHATSITE_TEST_SCREENSHOTS keeps the pictures somewhere to look at after the run.
    target = Path(os.environ.get("CHATSITE_TEST_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target
