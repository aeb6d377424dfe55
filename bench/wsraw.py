"""A minimal WebSocket (RFC 6455) client and the frame codec shared with fanout_server.py.

The load generator has to read ~200k deliveries/s on one core. A general-purpose
client (websockets) pays for a future, a queue hop and a UTF-8 decode per frame; this
one parses frames straight out of each `data_received` chunk and hands the payload
bytes to a callback, so a read of 64 KiB holding dozens of frames costs one event-loop
wakeup. It supports exactly what the generator needs: no extensions (no
permessage-deflate is offered, so the server never compresses), text frames,
fragmented messages, ping/pong and the closing handshake.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def _header(opcode: int, length: int, mask_bit: int) -> bytes:
    b0 = 0x80 | opcode
    if length < 126:
        return bytes((b0, mask_bit | length))
    if length < 65536:
        return bytes((b0, mask_bit | 126)) + _U16.pack(length)
    return bytes((b0, mask_bit | 127)) + _U64.pack(length)


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """An unmasked frame, as a server sends it."""
    return _header(opcode, len(payload), 0) + payload


def mask_payload(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    # Big-int XOR is C speed and avoids a Python loop over bytes.
    reps = (n + 3) // 4
    masked = int.from_bytes(payload, "big") ^ int.from_bytes((key * reps)[:n], "big")
    return masked.to_bytes(n, "big")


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """A masked frame, as a client must send it."""
    key = os.urandom(4)
    return _header(opcode, len(payload), 0x80) + key + mask_payload(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return _U16.pack(code) + reason.encode()


class HandshakeError(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status


class RawClient(asyncio.Protocol):
    """One WebSocket client connection.

    `on_text(payload: bytes, now_ns: int)` is called for every complete text (or
    binary) message; `now_ns` is time.monotonic_ns() taken once per read, so frames that
    arrived together share a receive time. `on_close(code)` is called once when the
    connection ends (code 1006 when it ended without a close frame).
    """

    __slots__ = (
        "transport",
        "request",
        "key",
        "on_text",
        "on_close",
        "opened",
        "handshaken",
        "buf",
        "frag",
        "close_code",
        "closed",
        "_clock",
        "bytes_in",
    )

    def __init__(self, request: bytes, key: bytes, on_text, on_close, opened: asyncio.Future, clock):
        self.transport: asyncio.Transport | None = None
        self.request = request
        self.key = key
        self.on_text = on_text
        self.on_close = on_close
        self.opened = opened
        self.handshaken = False
        self.buf = b""
        self.frag: list[bytes] | None = None
        self.close_code: int | None = None
        self.closed = False
        self._clock = clock
        self.bytes_in = 0

    # asyncio.Protocol

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes):
        self.bytes_in += len(data)
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.handshaken:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > 65536:
                    self._fail_handshake(0, "oversized response head")
                else:
                    self.buf = data
                return
            head = data[:end].decode("latin-1")
            data = data[end + 4 :]
            if not self._check_handshake(head):
                return
        self._frames(data)

    def _check_handshake(self, head: str) -> bool:
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != 101:
            self._fail_handshake(status, lines[0])
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != accept_key(self.key):
            self._fail_handshake(status, "bad Sec-WebSocket-Accept")
            return False
        self.handshaken = True
        if not self.opened.done():
            self.opened.set_result(self)
        return True

    def _fail_handshake(self, status: int, detail: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(status, detail))
        self.transport.close()

    def _frames(self, data: bytes) -> None:
        # The hot loop of the generator: keep it free of calls that are not needed.
        n = len(data)
        i = 0
        now = self._clock()
        on_text = self.on_text
        while n - i >= 2:
            b0 = data[i]
            ln = data[i + 1] & 0x7F
            if ln < 126:
                h = i + 2
            elif ln == 126:
                if n - i < 4:
                    break
                ln = _U16.unpack_from(data, i + 2)[0]
                h = i + 4
            else:
                if n - i < 10:
                    break
                ln = _U64.unpack_from(data, i + 2)[0]
                h = i + 10
            end = h + ln
            if end > n:
                break
            i = end
            op = b0 & 0x0F
            if b0 & 0x80 and (op == OP_TEXT or op == OP_BINARY):
                on_text(data[h:end], now)
            elif op >= OP_CLOSE:
                self._control(op, data[h:end])
                if self.closed:
                    return
            elif op == OP_CONT:
                # Continuation of a fragmented message: collect until FIN.
                if self.frag is None:
                    self.frag = []
                self.frag.append(data[h:end])
                if b0 & 0x80:
                    payload = b"".join(self.frag)
                    self.frag = None
                    on_text(payload, now)
            else:
                # First fragment of a fragmented text/binary message.
                self.frag = [data[h:end]]
        if i < n:
            self.buf = data[i:]

    def _control(self, op: int, payload: bytes) -> None:
        if op == OP_PING:
            self.transport.write(client_frame(payload, OP_PONG))
        elif op == OP_CLOSE:
            code = _U16.unpack_from(payload)[0] if len(payload) >= 2 else 1005
            self.close_code = code
            if not self.closed:
                self.closed = True
                try:
                    self.transport.write(client_frame(payload[:2], OP_CLOSE))
                finally:
                    self.transport.close()

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        self.closed = True
        code = self.close_code if self.close_code is not None else 1006
        cb, self.on_close = self.on_close, None
        if cb is not None:
            cb(code)

    # API

    def send_text(self, payload: bytes) -> None:
        if not self.closed:
            self.transport.write(client_frame(payload))

    def send_raw(self, frame: bytes) -> None:
        if not self.closed:
            self.transport.write(frame)

    def close(self, code: int = 1000) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.transport.write(client_frame(close_payload(code), OP_CLOSE))
            finally:
                self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()


def make_socket(host: str, port: int, local_ip: str | None, rcvbuf: int | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf:
        # Set before connect so the window the peer sees starts small.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if local_ip:
        sock.bind((local_ip, 0))
    sock.setblocking(False)
    return sock


def build_request(host: str, port: int, path: str, origin: str | None, cookie: str | None) -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        "User-Agent: chatsite-bench",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


async def connected_socket(host: str, port: int, local_ip: str | None, rcvbuf: int | None) -> socket.socket:
    """A TCP connection to the server from `local_ip` (make_socket), for a client to run on."""
    sock = make_socket(host, port, local_ip, rcvbuf)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    on_text,
    on_close,
    origin: str | None = None,
    cookie: str | None = None,
    local_ip: str | None = None,
    rcvbuf: int | None = None,
    clock=None,
) -> RawClient:
    """Open a connection and finish the opening handshake (raises HandshakeError/OSError)."""
    import time

    loop = asyncio.get_running_loop()
    sock = await connected_socket(host, port, local_ip, rcvbuf)
    request, key = build_request(host, port, path, origin, cookie)
    opened = loop.create_future()
    client = RawClient(request, key, on_text, on_close, opened, clock or time.monotonic_ns)
    await loop.create_connection(lambda: client, sock=sock)
    return await opened
