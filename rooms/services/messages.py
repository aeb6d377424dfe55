"""Chat messages: posting with replies and mentions, idempotent by client_id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from rooms import extensions
from rooms.errors import BadRequest, ChatError, NoSuchRoom, NotFound, Unauthenticated
from rooms.models import Message, Room
from rooms.permissions import Standing, is_site_staff, standings
from rooms.protocol import EXCERPT_CHARS, events
from rooms.selectors import send_contexts, user_in_room, user_with_standing
from rooms.services.emotes import resolve_emotes
from rooms.services.events import build_event, insert_rows, publish_on_commit, take_seqs
from rooms.text import visible

# PROTOCOL.md v1.1 "Mentions in any script": `@` not after an ASCII letter or digit (so
# `a@b.com` is none), then a run of username characters (Django's `[\w.@+-]`, Unicode
# \w, less `@`, which starts the next mention). Which prefix of the run is the name is
# decided by resolve_mentions: text may run on after a name without a space (你好@小明今天).
# static/chat/richtext.js findMentions applies the same rule in the page.
MENTION_RE = re.compile(r"(?<![A-Za-z0-9])@([\w.+-]{1,150})")


@dataclass(frozen=True)
class PreparedMessage:
    """A send that passed every check and waits to be stored (see store_messages)."""

    room: Room
    author: Any
    body: str
    reply_to: Message | None
    client_id: str | None
    author_brief: dict[str, Any]
    mentions: list[dict[str, Any]]
    emotes: list[dict[str, str]]


@dataclass(frozen=True)
class SendRequest:
    """One chat line as a viewer sent it, before any check."""

    actor: Any
    body: Any
    reply_to_id: int | None = None
    client_id: str | None = None


def check_send_message(
    actor, *, room_id: int, body: Any, reply_to_id: int | None = None, client_id: str | None = None
) -> Message:
    """Post a chat line for a signed-in viewer. Repeating a client_id returns the
    message it stored the first time and stores nothing."""
    [answer] = check_send_messages(room_id, [SendRequest(actor, body, reply_to_id, client_id)])
    if isinstance(answer, Exception):
        raise answer
    return answer


def check_send_messages(room_id: int, requests: list[SendRequest]) -> list[Message | Exception]:
    """Check several sends to one room and store those that pass in one transaction (the
    group commit of a busy room: one seq update and two inserts for all of them). Answers
    in order: the Message stored (or stored before under the same client_id), or the
    ChatError that refused the send, or the error that kept it from being stored."""
    answers: list[Message | Exception | None] = [None] * len(requests)
    checked: list[tuple[int, _CheckedSend]] = []
    sending: set[int] = set()
    now = timezone.now()
    contexts = send_contexts(room_id, [(request.actor.pk, request.client_id) for request in requests], now=now)
    for i, (request, context) in enumerate(zip(requests, contexts, strict=True)):
        try:
            outcome = _check_send(request, context, now=now, already_sending=request.actor.pk in sending)
        except ChatError as exc:
            answers[i] = exc
            continue
        if isinstance(outcome, Message):
            answers[i] = outcome
        else:
            checked.append((i, outcome))
            sending.add(request.actor.pk)
    # The room's rules last, for the whole batch at once: they count each send that
    # passes against its sender's limits, in one round trip to the shared store.
    refusals = extensions.send_rules().check([send.rules for _at, send in checked])
    prepared: list[tuple[int, PreparedMessage]] = []
    for (i, send), refusal in zip(checked, refusals, strict=True):
        if refusal is not None:
            answers[i] = refusal
        else:
            prepared.append((i, send.prepare()))
    stored_all = _store_or_answer_errors([prep for _at, prep in prepared])
    for (i, _prepared), stored in zip(prepared, stored_all, strict=True):
        answers[i] = stored
    return answers


def _store_or_answer_errors(batch: list[PreparedMessage]) -> list[Message | Exception]:
    """store_messages, answering a message the database refuses with its error: if the
    batch fails together, each is stored alone, so that one refused message does not
    fail the others with it."""
    if len(batch) > 1:
        try:
            return store_messages(batch)
        except Exception:
            pass  # stored one by one below
    answers: list[Message | Exception] = []
    for prepared in batch:
        try:
            answers.extend(store_messages([prepared]))
        except Exception as exc:
            answers.append(exc)
    return answers


@dataclass(frozen=True)
class _CheckedSend:
    """A send that passed the checks of its own, waiting for the room's rules."""

    request: SendRequest
    room: Room
    body: str
    reply_to: Message | None
    where: Standing
    rules: extensions.SendContext

    def prepare(self) -> PreparedMessage:
        actor, room = self.request.actor, self.room
        return PreparedMessage(
            room=room,
            author=actor,
            body=self.body,
            reply_to=self.reply_to,
            client_id=self.request.client_id,
            author_brief=user_with_standing(actor, self.where),
            # Resolved before the transaction: the room's seq lock is held only for writes.
            mentions=resolve_mentions(self.body, room),
            emotes=resolve_emotes(self.body, room.pk),
        )


def _check_send(
    request: SendRequest, room: Room | None, *, now, already_sending: bool = False
) -> _CheckedSend | Message:
    """The checks of one send, given its context from send_contexts, but for the room's
    rules (bans, mutes, slow mode, rate limits: extensions.send_rules), which
    check_send_messages applies to the batch: the stored Message if the client_id was
    used already, else the send with what the rules need. Raises ChatError for a refused
    send. `already_sending`: another send of the actor's waits to be stored with this
    one, which slow mode counts as a message sent just now."""
    actor, body = request.actor, request.body
    if not actor.is_authenticated:
        raise Unauthenticated(_("Sign in to chat."))
    if room is None:
        raise NoSuchRoom()
    if room.stored_id is not None:
        return Message.objects.get(pk=room.stored_id)
    if not isinstance(body, str):
        raise BadRequest(format_lazy(_("`{name}` must be a string."), name="body"))
    body = visible(body)
    if not body:
        raise BadRequest(_("A message cannot be empty."))
    if len(body) > settings.CHAT_BODY_MAX_CHARS:
        raise BadRequest(format_lazy(_("A message is at most {n} characters."), n=settings.CHAT_BODY_MAX_CHARS))
    reply_to = None
    if request.reply_to_id is not None:
        reply_to = Message.objects.filter(pk=request.reply_to_id, room_id=room.pk).select_related("author").first()
        if reply_to is None:
            raise NotFound(_("The message you reply to is not in this room."))
    where = Standing(role=room.member_role or "member", is_staff=is_site_staff(actor))
    rules = extensions.SendContext(
        room_id=room.pk,
        user_id=actor.pk,
        exempt=where.exempt_from_limits,
        banned_until=room.banned_until,
        muted_until=room.muted_until,
        slow_mode_seconds=room.slow_mode_seconds,
        last_sent_at=now if already_sending else room.last_sent_at,
        now=now,
    )
    return _CheckedSend(request=request, room=room, body=body, reply_to=reply_to, where=where, rules=rules)


def store_messages(batch: list[PreparedMessage]) -> list[Message]:
    """Store prepared messages of one room, in order, in one transaction (a group commit:
    one seq update and two inserts however many). If one of them repeats a client_id
    that another connection stored meanwhile, each is stored on its own instead, and
    that one answers with the message already stored."""
    try:
        return _store_together(batch)
    except IntegrityError:
        if len(batch) == 1:
            return [_stored_twin(batch[0])]
        return [_store_alone(prepared) for prepared in batch]


def _store_alone(prepared: PreparedMessage) -> Message:
    try:
        return _store_together([prepared])[0]
    except IntegrityError:
        return _stored_twin(prepared)


def _stored_twin(prepared: PreparedMessage) -> Message:
    existing = Message.objects.filter(room=prepared.room, author=prepared.author, client_id=prepared.client_id).first()
    if prepared.client_id is None or existing is None:
        raise IntegrityError("message could not be stored")
    return existing


@transaction.atomic
def _store_together(batch: list[PreparedMessage]) -> list[Message]:
    room = batch[0].room
    now = timezone.now()
    first = take_seqs(room.pk, len(batch))
    messages = [
        Message(
            room=room,
            author=p.author,
            body=p.body,
            reply_to=p.reply_to,
            client_id=p.client_id,
            seq=first + i,
            created_at=now,
        )
        for i, p in enumerate(batch)
    ]
    insert_rows(messages, returning_pk=True)
    rows = [
        build_event(
            room.pk,
            seq=m.seq,
            event=events.message(
                id=m.pk,
                author=p.author_brief,
                body=p.body,
                reply_to=reply_excerpt(p.reply_to, room),
                mentions=p.mentions,
                client_id=p.client_id,
                emotes=p.emotes,
            ),
            actor_id=p.author.pk,
            at=now,
        )
        for p, m in zip(batch, messages, strict=True)
    ]
    insert_rows(rows)
    for p, row in zip(batch, rows, strict=True):
        publish_on_commit(row, skippable=_is_member_line(p), concerns=_concerned(p))
    return messages


def _is_member_line(prepared: PreparedMessage) -> bool:
    """A line a feed faster than a person can read may leave out: a member's, not the
    host team's or staff's."""
    author = prepared.author_brief
    return author.get("role") == "member" and not author.get("staff")


def _concerned(prepared: PreparedMessage) -> tuple[int, ...]:
    """Who always gets the line: its author, the people it mentions, whom it answers."""
    ids = {prepared.author.pk, *(m["id"] for m in prepared.mentions)}
    if prepared.reply_to is not None and prepared.reply_to.author_id is not None:
        ids.add(prepared.reply_to.author_id)
    return tuple(sorted(ids))


def do_send_message(
    actor, *, room_id: int, body: str, reply_to_id: int | None = None, client_id: str | None = None
) -> Message:
    """Store and publish a message from `actor` without the checks (admin, commands, demo data)."""
    room = Room.objects.get(pk=room_id)
    reply_to = Message.objects.select_related("author").get(pk=reply_to_id) if reply_to_id is not None else None
    prepared = PreparedMessage(
        room=room,
        author=actor,
        body=body,
        reply_to=reply_to,
        client_id=client_id,
        author_brief=user_in_room(actor, room),
        mentions=resolve_mentions(body, room),
        emotes=resolve_emotes(body, room.pk),
    )
    return store_messages([prepared])[0]


def reply_excerpt(message: Message | None, room: Room) -> dict[str, Any] | None:
    if message is None:
        return None
    return events.quote(
        id=message.pk,
        author=user_in_room(message.author, room),
        excerpt="" if message.is_deleted else message.body[:EXCERPT_CHARS],
        deleted=message.is_deleted,
    )


def resolve_mentions(body: str, room: Room) -> list[dict[str, Any]]:
    """Users named by `@name`, in order of first appearance; other `@` text stays text.
    Each `@` names the longest username its run of name characters starts with."""
    runs = MENTION_RE.findall(body)[:20]
    if not runs:
        return []
    User = get_user_model()
    field = User.USERNAME_FIELD
    prefixes = {run[:n] for run in runs for n in range(1, len(run) + 1)}
    found = {getattr(u, field): u for u in User.objects.filter(**{f"{field}__in": prefixes}, is_active=True)}
    names = []
    for run in runs:
        name = next((run[:n] for n in range(len(run), 0, -1) if run[:n] in found), None)
        if name is not None and name not in names:
            names.append(name)
    where = standings([found[name] for name in names], room)
    return [user_with_standing(found[name], where[found[name].pk]) for name in names]
