"""Moderation's commands over the socket, registered with rooms' seam (rooms.extensions)
when the app is ready: each maps a client command to its service and its reply."""

from __future__ import annotations

from moderation import services
from rooms.extensions import SocketCommand, register_socket_command
from rooms.protocol import frames


def _acked_with_seq(client_id, event) -> str:
    # Every moderation command appends a room event: the ack carries its seq.
    return frames.ack(client_id, seq=event.seq)


def _acked_with_blocks(client_id, blocked: set[int]) -> str:
    return frames.ack(client_id, blocked=sorted(blocked))


def _keep_blocks(connection, blocked: set[int]) -> None:
    connection.set_blocked(blocked)


def register() -> None:
    # The services take what a command runs with, `(actor, *, room_id, **args)`; only
    # `delete` renames its argument (the protocol's `id` is the service's `message_id`).
    by_room = {
        "delete": lambda actor, *, room_id, id: services.check_delete_message(actor, room_id=room_id, message_id=id),
        "mute": services.check_mute,
        "unmute": services.check_unmute,
        "kick": services.check_kick,
        "ban": services.check_ban,
        "unban": services.check_unban,
        "slow_mode": services.check_set_slow_mode,
    }
    for kind, run in by_room.items():
        register_socket_command(kind, SocketCommand(run=run, reply=_acked_with_seq))
    # Blocks are the user's own, in every room.
    for kind, check in (("block", services.check_block), ("unblock", services.check_unblock)):
        register_socket_command(
            kind,
            SocketCommand(
                run=lambda actor, *, room_id, _check=check, **args: _check(actor, **args),
                reply=_acked_with_blocks,
                apply=_keep_blocks,
            ),
        )
