"""The floor under a huge room's fan-out: what one `socket.send` of a frame costs per
viewer when nothing else is done, to set against what the server spends per viewer and
frame (bench/RESULTS.md, "the huge room in groups").

    python3 bench/sendfloor.py [--viewers 10000] [--bytes 700] [--seconds 8]

Opens that many loopback TCP connections to a reader process pinned to CPU 1 (which
reads everything, as the load generator does), and from CPU 0 writes the same frame to
every socket, then waits for the reader the way a room's window would, and again. Prints
the sending thread's CPU time per send.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import time


def reader(port: int, viewers: int) -> None:
    os.sched_setaffinity(0, {1})
    sockets = []
    for _ in range(viewers):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        sockets.append(sock)
    poll = select.epoll()
    by_fd = {sock.fileno(): sock for sock in sockets}
    for fd in by_fd:
        poll.register(fd, select.EPOLLIN)
    while True:
        for fd, _ in poll.poll():
            try:
                if not by_fd[fd].recv(65536):
                    os._exit(0)
            except BlockingIOError:
                pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--bytes", type=int, default=700, help="frame size")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between rounds")
    args = parser.parse_args()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    child = os.fork()
    if child == 0:
        reader(port, args.viewers)
    os.sched_setaffinity(0, {0})
    sockets = []
    for _ in range(args.viewers):
        sock, _ = listener.accept()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sockets.append(sock)
    frame = b"x" * args.bytes
    spent, sends = 0.0, 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        started = time.thread_time()
        for sock in sockets:
            sock.send(frame)
        spent += time.thread_time() - started
        sends += len(sockets)
        time.sleep(args.pause)
    print(f"{args.viewers} viewers, {args.bytes} B frames: {spent / sends * 1e6:.2f} us of CPU per send")
    for sock in sockets:
        sock.close()
    os.waitpid(child, 0)


if __name__ == "__main__":
    main()
