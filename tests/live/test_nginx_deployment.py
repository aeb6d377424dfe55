"""The deployment docs/deploy.md documents, run for real: two daphne processes with
--proxy-headers behind nginx, configured from deploy/nginx.conf (the text the doc shows)
with TLS, sharing Redis and PostgreSQL.

Clients connect through nginx from different loopback addresses, as visitors from
different places would; the per-address connection limit must count those addresses,
not nginx's own.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from websockets.asyncio.client import connect

from rooms.services import do_create_room
from tests.live.clients import LiveClient, session_cookie_for
from tests.live.conftest import REPO_ROOT, _die_with_parent, skip_or_fail
from tests.live.sse_clients import open_stream, post_commands

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.multiprocess,
    pytest.mark.redis,
    pytest.mark.postgres,
]

NGINX_CONF = REPO_ROOT / "deploy" / "nginx.conf"
START_TIMEOUT_SECONDS = 15.0
# Close code for a connection over a limit (rooms.consumers.CLOSE_FLOODING).
OVER_LIMIT = 4429


def https_env(**extra: str) -> dict[str, str]:
    """The production switches. The key is the test process's own, so that the servers
    can read the sessions the test signs in with (DJANGO_HTTPS needs one set)."""
    from django.conf import settings

    return {"DJANGO_HTTPS": "1", "DJANGO_SECRET_KEY": settings.SECRET_KEY, "ALLOWED_HOSTS": "127.0.0.1", **extra}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def program(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        skip_or_fail(f"{name} is not installed (scripts/test installs nginx with apt-get when run as root)")
    return path


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made with `cryptography` (daphne's
    autobahn depends on it), so the test needs no openssl program."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class Nginx:
    """nginx in the foreground with its prefix, pid file, logs and temp files in `directory`."""

    def __init__(self, directory: Path, site: str) -> None:
        self.directory = directory
        (directory / "chatsite.conf").write_text(site)
        # As root, nginx's workers would run as nobody, who cannot enter pytest's tmp dirs.
        user = "user root root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {kind}_temp_path {directory / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (directory / "nginx.conf").write_text(
            f"{user}pid {directory / 'nginx.pid'};\nerror_log {directory / 'error.log'} warn;\n"
            "worker_processes 1;\nevents { worker_connections 256; }\n"
            f"http {{\n    access_log {directory / 'access.log'};\n{temp}"
            f"    include {directory / 'chatsite.conf'};\n}}\n"
        )
        self.log = (directory / "nginx.out").open("wb")
        self.process = subprocess.Popen(
            [program("nginx"), "-p", str(directory), "-c", str(directory / "nginx.conf")]
            + ["-e", str(directory / "error.log"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def output(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in (self.directory / "nginx.out", self.directory / "error.log")
            if path.exists()
        )

    def wait_listening(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"nginx exited with code {self.process.returncode}:\n{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"nginx did not listen on {port} within {START_TIMEOUT_SECONDS} s:\n{self.output()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


@pytest.fixture
def nginx_in_front(tmp_path):
    """`nginx_in_front(ports) -> https port`: nginx from deploy/nginx.conf before those daphne ports."""
    started: list[Nginx] = []

    def start(daphne_ports: list[int]) -> int:
        directory = tmp_path / "nginx"
        directory.mkdir()
        cert, key = self_signed_certificate(directory)
        (directory / "static").mkdir()
        https_port, http_port = free_port(), free_port()
        site = NGINX_CONF.read_text()
        for name, value in {
            "SERVER_NAME": "127.0.0.1",
            "LISTEN_HTTPS": f"127.0.0.1:{https_port}",
            "LISTEN_HTTP": f"127.0.0.1:{http_port}",
            "TLS_CERTIFICATE": str(cert),
            "TLS_CERTIFICATE_KEY": str(key),
            "STATIC_ROOT": str(directory / "static"),
            "DAPHNE_PORT_1": str(daphne_ports[0]),
            "DAPHNE_PORT_2": str(daphne_ports[1]),
        }.items():
            site = site.replace("{{" + name + "}}", value)
        left = re.findall(r"\{\{[A-Z0-9_]+\}\}", site)
        assert not left, f"deploy/nginx.conf has placeholders this test does not fill: {left}"
        nginx = Nginx(directory, site)
        started.append(nginx)
        nginx.wait_listening(https_port)
        return https_port

    yield start
    for nginx in started:
        nginx.stop()
        print(f"----- nginx -----\n{nginx.output()[-4000:]}")


async def through_nginx(port: int, slug: str, *, user=None, source: str, headers=()) -> LiveClient:
    """A WebSocket to the room through nginx, from the loopback address `source`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    extra = list(headers)
    if user is not None:
        cookie = await sync_to_async(session_cookie_for)(user)
        extra.append(("Cookie", f"{cookie['name']}={cookie['value']}"))
    ws = await connect(
        f"wss://127.0.0.1:{port}/ws/rooms/{slug}/",
        ssl=context,
        origin=f"https://127.0.0.1:{port}",
        additional_headers=extra,
        local_addr=(source, 0),
        ping_interval=None,
        open_timeout=10,
        close_timeout=5,
        compression=None,
        proxy=None,
    )
    return LiveClient(ws, label=f"{getattr(user, 'username', 'anon')}@{source}")


@sync_to_async
def room_and_people():
    User = get_user_model()
    host = User.objects.create_user(username="edge-host")
    do_create_room(None, slug="edge", title="Edge", host_username=host.username)
    return User.objects.create_user(username="ana"), User.objects.create_user(username="ben")


def ws_clients_in(server) -> str:
    """The client addresses in a daphne's access log of WebSocket connections."""
    return "\n".join(line for line in server.output().splitlines() if "WSCONNECT " in line)


async def test_two_daphnes_behind_nginx_share_a_room_and_limit_real_client_addresses(daphne_servers, nginx_in_front):
    servers = daphne_servers(2, redis=True, env=https_env(CHAT_MAX_CONNECTIONS_PER_IP="1"), args=["--proxy-headers"])
    port = await sync_to_async(nginx_in_front)([server.port for server in servers])
    ana, ben = await room_and_people()
    clients: list[LiveClient] = []
    try:
        # least_conn sends the second socket to the process without one.
        sender = await through_nginx(port, "edge", user=ana, source="127.0.0.2")
        clients.append(sender)
        await sender.expect_welcome()
        reader = await through_nginx(port, "edge", user=ben, source="127.0.0.3")
        clients.append(reader)
        await reader.expect_welcome()
        where = [ws_clients_in(server) for server in servers]

        await sender.send({"type": "send", "body": "through nginx", "client_id": "edge-1"})
        heard = await reader.wait_for(lambda e: e["type"] == "message" and e["body"] == "through nginx")

        # Over the limit of one per address: a second socket from 127.0.0.2, even one that
        # claims another address (nginx overwrites X-Forwarded-For).
        again = await through_nginx(port, "edge", source="127.0.0.2", headers=[("X-Forwarded-For", "203.0.113.9")])
        clients.append(again)
        refused = await again.wait_closed()
        # Another address is admitted: the limit is per visitor, not for all of nginx.
        other = await through_nginx(port, "edge", source="127.0.0.4")
        clients.append(other)
        await other.expect_welcome()

        assert heard["author"]["name"] == "ana" and heard["client_id"] == "edge-1"
        assert refused == OVER_LIMIT
        assert not sender.closed and not reader.closed and not other.closed
        # Each process saw the real addresses, and the sender and the reader were on
        # different processes: the message crossed between them through Redis.
        on_sender = next(i for i, seen in enumerate(where) if "127.0.0.2:" in seen)
        assert "127.0.0.3:" in where[1 - on_sender] and "127.0.0.3:" not in where[on_sender], where
        assert "127.0.0.2:" not in where[1 - on_sender], where
        assert "127.0.0.1:" not in "".join(ws_clients_in(server) for server in servers)
    finally:
        for client in clients:
            await client.close()


async def test_django_sees_https_through_nginx_and_probes_reach_each_daphne(daphne_servers, nginx_in_front):
    servers = daphne_servers(2, redis=True, env=https_env(), args=["--proxy-headers"])
    port = await sync_to_async(nginx_in_front)([server.port for server in servers])

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import urllib.request

    def get(path: str) -> tuple[int, str, dict]:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=context, timeout=5) as response:
            return response.status, response.read().decode(), dict(response.headers)

    status, body, headers = await sync_to_async(get)("/readyz")

    assert status == 200 and '"database": "ok"' in body
    # Django saw https (X-Forwarded-Proto from nginx): HSTS, no redirect loop.
    assert "Strict-Transport-Security" in headers
    for server in servers:
        assert server.get("/readyz")[0] == 200
        # Straight to each daphne from this machine: the metrics; through nginx: not found.
        assert server.get("/metrics")[0] == 200

    def status_of(path: str) -> int:
        try:
            return get(path)[0]
        except urllib.error.HTTPError as exc:
            return exc.code

    assert await sync_to_async(status_of)("/metrics") == 404


async def test_the_event_stream_and_its_commands_work_through_nginx(daphne_servers, nginx_in_front):
    servers = daphne_servers(2, redis=True, env=https_env(CHAT_MAX_CONNECTIONS_PER_IP="1"), args=["--proxy-headers"])
    port = await sync_to_async(nginx_in_front)([server.port for server in servers])
    ana, ben = await room_and_people()
    base = f"https://127.0.0.1:{port}"
    ana_cookie = await sync_to_async(session_cookie_for)(ana)
    stream = await open_stream(base, "edge", cookie=await sync_to_async(session_cookie_for)(ben), source="127.0.0.5")
    try:
        # The welcome comes while the response is still open: nginx does not hold it back.
        welcome = await stream.expect_welcome()
        status, body = await sync_to_async(post_commands)(
            base, "edge", {"type": "send", "body": "streamed through nginx", "client_id": "edge-sse"}, cookie=ana_cookie
        )
        assert status == 200, body
        [ack] = body["replies"]
        heard = await stream.wait_for(lambda e: e.get("seq") == ack["seq"])

        assert stream.status == 200 and stream.headers["content-type"].startswith("text/event-stream")
        assert welcome["you"]["name"] == "ben"
        assert heard["body"] == "streamed through nginx" and heard["author"]["name"] == "ana"
        assert not stream.ended.done()

        # Streams count against the per-address limit by the visitor's address too.
        again = await open_stream(base, "edge", source="127.0.0.5")
        other = await open_stream(base, "edge", source="127.0.0.6")
        await other.expect_welcome()
        assert again.status == 429
        await again.close()
        await other.close()
    finally:
        await stream.close()
