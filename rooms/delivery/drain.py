"""Leaving gracefully: what a server process does between SIGTERM and its exit.

Its viewers are told to go elsewhere (close 1012, "service restart") a few at a time,
spread evenly over CHAT_DRAIN_SECONDS, so that the other processes take them back
without a thundering herd; each resumes there with `?after=` and misses nothing, since
the room log has everything. Before a viewer is closed, the answers on their way to it
go out (a send being stored gets its ack); meanwhile it gets `busy` for anything new.
Once every viewer is gone, the room writers store what they still hold and the
publisher hands the last events to the channel layer; then the process may exit.

This module is plain asyncio, whatever the server. Stopping the listening sockets and
hooking SIGTERM are the server's business: rooms.delivery.transport does both for daphne.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.conf import settings

from rooms import realtime, writer
from rooms.protocol import Close

logger = logging.getLogger(__name__)

# A viewer's answers on their way (sends being stored) get at most this long before it
# is closed anyway; the client sends again what was not acked, under the same client_id.
REPLIES_WAIT_SECONDS = 5.0
# After the last viewer: how long the writers and the publisher get to finish.
FLUSH_WAIT_SECONDS = 10.0
# Viewers due to close within this much of each other are closed together.
TICK_SECONDS = 0.02

_draining = False


def draining() -> bool:
    """True once this process has begun to drain: it takes no new viewers."""
    return _draining


def spread(count: int, seconds: float) -> list[float]:
    """When to close each of `count` viewers, in seconds from the start of the drain:
    evenly over `seconds`, the first at once and the last one step before the end."""
    if count <= 0:
        return []
    step = seconds / count
    return [i * step for i in range(count)]


async def drain(seconds: float | None = None) -> None:
    """Close every viewer of the running loop's hub with 1012, spread over `seconds`
    (CHAT_DRAIN_SECONDS), then wait for the writers and the publisher to finish."""
    global _draining
    _draining = True
    seconds = settings.CHAT_DRAIN_SECONDS if seconds is None else seconds
    from rooms.delivery.hub import _hubs

    hub = _hubs.get(asyncio.get_running_loop())
    viewers = _viewers(hub)
    logger.info("Draining: closing %d viewers over %s s", len(viewers), seconds)
    closing: dict[object, asyncio.Task] = {}
    started = time.monotonic()
    for due, viewer in zip(spread(len(viewers), seconds), viewers, strict=True):
        wait = started + due - time.monotonic()
        if wait > TICK_SECONDS:
            await asyncio.sleep(wait)
        closing[viewer] = asyncio.ensure_future(_close(viewer))
    await _flushed(hub, closing)
    logger.info("Drained in %.1f s", time.monotonic() - started)


def _viewers(hub) -> list:
    return [viewer for feed in list(hub.feeds.values()) for viewer in feed.viewers] if hub is not None else []


async def _close(viewer) -> None:
    try:
        await viewer.close_by_hub(Close.SERVICE_RESTART)
    except Exception:
        logger.exception("Could not close %s for the drain", getattr(viewer, "conn_id", viewer))


async def _flushed(hub, closing: dict[object, asyncio.Task]) -> None:
    """Until the closed viewers have left the hub, the room writers have stored what
    they hold and the publisher has handed every stored event to the channel layer (for
    live delivery on the other processes). A viewer whose handshake was under way when
    the drain began, and that joined since, is closed too."""
    deadline = time.monotonic() + FLUSH_WAIT_SECONDS
    while _viewers(hub) or not writer.idle() or realtime.publishes_pending():
        for viewer in _viewers(hub):
            if viewer not in closing:
                closing[viewer] = asyncio.ensure_future(_close(viewer))
        if time.monotonic() > deadline:
            logger.warning("Drain: viewers, writers or publisher still busy after %s s; exiting", FLUSH_WAIT_SECONDS)
            return
        await asyncio.sleep(TICK_SECONDS)
