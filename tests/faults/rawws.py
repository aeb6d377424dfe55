"""A WebSocket client on a bare TCP socket, for clients no library would model: one that
stops reading (so the server's buffers fill), one that sends frames a well-behaved
library refuses to send. Just enough of RFC 6455 for tests: the handshake, masked
client frames, unmasked server frames (fragments joined), close frames."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class RawSocket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    # Text frames received so far, and the close code if a close frame came.
    texts: list[str] = field(default_factory=list)
    # Seqs of the room events received, in order (welcome history included).
    seqs: list[int] = field(default_factory=list)
    close_code: int | None = None
    bytes_read: int = 0
    eof: bool = False
    _fragments: list[bytes] = field(default_factory=list)
    _opcode: int = 0

    async def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        mask = os.urandom(4)
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 65536 else _mask_fast(payload, mask)
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    async def send_text(self, text: str) -> None:
        await self.send_frame(OP_TEXT, text.encode("utf-8", "surrogatepass"))

    async def send_json(self, obj: Any) -> None:
        await self.send_text(json.dumps(obj))

    async def read_frame(self) -> tuple[int, bytes] | None:
        """One whole message (fragments joined), or None at EOF. Answers pings."""
        while True:
            try:
                b0, b1 = await self.reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                assert not b1 & 0x80, "the server masked a frame"
                payload = await self.reader.readexactly(n)
            except (asyncio.IncompleteReadError, ConnectionError):
                self.eof = True
                return None
            self.bytes_read += 2 + n
            opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
            if opcode == OP_PING:
                await self.send_frame(OP_PONG, payload)
                continue
            if opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return opcode, payload
            if opcode != OP_CONT:
                self._opcode = opcode
            self._fragments.append(payload)
            if fin:
                data, self._fragments = b"".join(self._fragments), []
                if self._opcode == OP_TEXT:
                    text = data.decode("utf-8")
                    self.texts.append(text)
                    self._note_seqs(text)
                return self._opcode, data

    def _note_seqs(self, text: str) -> None:
        obj = json.loads(text)
        kind = obj.get("type")
        events = obj["history"] if kind == "welcome" else obj["events"] if kind == "batch" else [obj]
        self.seqs.extend(e["seq"] for e in events if "seq" in e and e.get("type") not in ("ack", "synced", "pong"))

    async def read_json(self, timeout: float = 10.0) -> Any:
        while True:
            frame = await asyncio.wait_for(self.read_frame(), timeout)
            if frame is None or frame[0] == OP_CLOSE:
                raise ConnectionError(f"closed ({self.close_code}) while waiting for a frame")
            if frame[0] == OP_TEXT:
                return json.loads(frame[1])

    async def close(self) -> None:
        try:
            if not self.writer.is_closing():
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
        except Exception:
            pass


def _mask_fast(payload: bytes, mask: bytes) -> bytes:
    # int arithmetic over the whole buffer: byte-by-byte Python is too slow past 64 KiB.
    n = len(payload)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big")


async def open_raw(
    server: Any,
    path: str,
    *,
    cookie: dict[str, str] | None = None,
    origin: str | None = "",
    rcvbuf: int | None = None,
) -> RawSocket:
    """Handshake on a fresh TCP connection; raises ConnectionError unless answered 101.

    `origin` "" sends the server's own, None sends none. `rcvbuf` shrinks the socket's
    receive buffer before connecting, so that a client that stops reading backs the
    server up quickly instead of parking megabytes in this kernel.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 24)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin or server.origin}")
    if cookie is not None:
        lines.append(f"Cookie: {cookie['name']}={cookie['value']}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        writer.close()
        raise ConnectionError(f"handshake refused: {status.decode(errors='replace')}")
    return RawSocket(reader, writer)
