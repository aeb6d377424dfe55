"""One viewer's place in a room's log: the exactly-once bookkeeping of live delivery.

Plain synchronous code with no I/O: the hub hands it every batch of events it writes,
the stream answers with what this viewer's socket gets (the shared frame, a frame of its
own, or nothing), and the connection writes that.
"""

from __future__ import annotations

from dataclasses import dataclass

from rooms.protocol import MAX_ID, batch_text


class Frame:
    """One outgoing text frame, shared by every viewer it goes to. A transport may cache
    its own encoding of it (`wire`: the framed bytes under daphne; `sse`: the
    server-sent event, rooms.delivery.sse), made once for all."""

    __slots__ = ("text", "wire", "sse")

    def __init__(self, text: str) -> None:
        self.text = text
        self.wire: bytes | None = None
        self.sse = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to viewers. `seq` is None for connection events (presence).
    `skippable`: a member's chat line, which a readable feed may leave out, but never
    for the users in `concerns` (its author, whom it mentions, whom it answers)."""

    seq: int | None
    actor: int | None
    text: str
    skippable: bool = False
    concerns: tuple[int, ...] = ()
    # Whether the room's readable feed keeps it (a skippable line only): None until the
    # feed decides.
    readable: bool | None = None


@dataclass(frozen=True, slots=True)
class Thinned:
    """A flush whose member chat was more than people can read: `kept` (in seq order,
    what the shared `frame` holds, with `last_seq` and `skipped`), and for each user
    concerned by a skipped line, the lines they get anyway."""

    kept: list[Delivery]
    frame: Frame
    skipped: int
    actors: set[int]
    for_user: dict[int, list[Delivery]]


class FellBehind(Exception):
    """The viewer held more events than it may (CHAT_VIEWER_QUEUE_MAX): it is to resume
    from the log (close 4409) rather than grow without bound."""


class ViewerStream:
    """What one viewer has been sent. While holding (before its welcome, during a sync
    replay) live events wait in the outbox; afterwards each batch is written as it comes,
    less what the viewer already has and what the people it blocked said."""

    __slots__ = ("holding", "outbox", "last_seq", "complete_seq", "owes_complete", "blocked", "queue_max", "user_id")

    def __init__(self, *, blocked: set[int], queue_max: int, user_id: int | None = None) -> None:
        self.user_id = user_id
        self.holding = True
        self.outbox: list[Delivery] = []
        self.last_seq = 0
        # Every room event up to this seq was sent to this viewer or withheld from it
        # (blocked authors); beyond it there may be a hole that only the log can fill.
        self.complete_seq = 0
        self.owes_complete = False
        self.blocked = blocked
        self.queue_max = queue_max

    def offer(
        self,
        deliveries: list[Delivery],
        frame: Frame,
        actors: set[int],
        first_seq: int | None,
        last_seq: int | None,
        dense: bool,
        thinned: Thinned | None = None,
    ) -> Frame | None:
        """The frame to write for a batch the hub writes (`frame` holds all of
        `deliveries`, in seq order; `dense`: their seqs have no hole), or None.
        `thinned`: the readable feed of that batch, when it left member lines out.
        Raises FellBehind when a holding viewer's outbox overflows."""
        if self.holding:
            self.outbox.extend(deliveries)
            if len(self.outbox) > self.queue_max:
                raise FellBehind
            return None
        if last_seq is not None and dense and first_seq <= self.complete_seq + 1:
            self.complete_seq = max(self.complete_seq, last_seq)
        if thinned is not None:
            return self._thinned_for_me(thinned, last_seq)
        if (
            (first_seq is not None and first_seq <= self.last_seq)
            or (self.blocked and not self.blocked.isdisjoint(actors))
            or self.owes_complete
        ):
            frame = self._frame_for_me(deliveries)
            if frame is None:
                return None
        if last_seq is not None and last_seq > self.last_seq:
            self.last_seq = last_seq
        return frame

    def hold(self) -> None:
        """Keep live events back (a replay is being read): release() sends what is left."""
        self.holding = True

    def release(self, last_seq: int) -> Frame | None:
        """Stop holding: everything up to `last_seq` was sent; the frame of what queued
        after it, if anything."""
        self.last_seq = max(self.last_seq, last_seq)
        self.complete_seq = max(self.complete_seq, last_seq)
        waiting, self.outbox = self.outbox, []
        self.holding = False
        if not waiting:
            return None
        waiting.sort(key=lambda d: d.seq if d.seq is not None else MAX_ID)
        for d in waiting:
            if d.seq is not None and d.seq == self.complete_seq + 1:
                self.complete_seq = d.seq
        frame = self._frame_for_me(waiting)
        seqs = [d.seq for d in waiting if d.seq is not None]
        if seqs:
            self.last_seq = max(self.last_seq, seqs[-1])
        return frame

    def _thinned_for_me(self, thinned: Thinned, last_seq: int | None) -> Frame | None:
        extra = thinned.for_user.get(self.user_id) if self.user_id is not None else None
        first = thinned.kept[0].seq if thinned.kept else None
        if (
            not extra
            and self.complete_seq == last_seq
            and not (first is not None and first <= self.last_seq)
            and not (self.blocked and not self.blocked.isdisjoint(thinned.actors))
        ):
            # The shared frame: it vouches for everything up to last_seq, as is true here.
            # It goes even with nothing kept, so that the viewer learns what it missed.
            frame = thinned.frame
            self.owes_complete = False
        else:
            mine = sorted(thinned.kept + extra, key=_by_seq) if extra else thinned.kept
            frame = self._frame_for_me(mine, skipped=thinned.skipped - len(extra or ()), withheld=True)
        if last_seq is not None and last_seq > self.last_seq:
            self.last_seq = last_seq
        return frame

    def _frame_for_me(self, deliveries: list[Delivery], *, skipped: int = 0, withheld: bool = False) -> Frame | None:
        """The part of `deliveries` this viewer gets: not what it already has, not what
        its blocked users said. When something was withheld, the frame says up to which
        seq the viewer has everything, so the client does not mistake the hole for loss
        and go back to the log for it."""
        mine = []
        withheld = withheld or self.owes_complete
        for d in deliveries:
            if d.seq is not None and d.seq <= self.last_seq:
                continue
            if d.actor is not None and d.actor in self.blocked:
                withheld = True
                continue
            mine.append(d.text)
        if not mine:
            # Nothing to send now; the next frame says how far this viewer is complete.
            self.owes_complete = withheld
            return None
        self.owes_complete = False
        if withheld and self.complete_seq:
            return Frame(batch_text(mine, complete_to=self.complete_seq, skipped=skipped))
        return Frame(batch_text(mine))


def _by_seq(delivery: Delivery) -> int:
    return delivery.seq if delivery.seq is not None else MAX_ID
