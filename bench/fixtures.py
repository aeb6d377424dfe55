"""Bench fixtures: a room, sender users who are its moderators, and their sessions.

With `--members` the senders are plain members instead (their lines are what a readable
feed may leave out), and `--team-senders K` adds K more users made moderators, whose
lines are never left out (their sessions in "team_sessions").

Run in its own process (run.py does) with the server's DJANGO_SETTINGS_MODULE,
DATABASE_URL and REDIS_URL, so the load generator itself never imports Django. Prints
one JSON object on its last line of stdout:

    {"room_id": 1, "slug": "bench-1", "last_seq": 0, "sessions": ["...", ...], "team_sessions": [...]}

Idempotent: users and the room are reused when they exist; sessions are new each time.

    DATABASE_URL=... python bench/fixtures.py --slug bench --senders 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_django() -> None:
    sys.path.insert(0, ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()


def make(
    slug: str, senders: int, host: str, sender_prefix: str, live: bool, log_events: int = 0, members: bool = False,
    team_senders: int = 0, team_prefix: str = "bench-team-",
) -> dict:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    from rooms import services
    from rooms.models import Membership, Room

    User = get_user_model()

    def user(name: str):
        u, created = User.objects.get_or_create(username=name)
        if created:
            u.set_unusable_password()
            u.save(update_fields=["password"])
        return u

    user(host)
    room = Room.objects.filter(slug=slug).first()
    if room is None:
        room = services.do_create_room(None, slug=slug, title=f"Bench {slug}", host_username=host)
    if live and not room.is_live:
        # Viewers read any public room; live is how a real audience finds it.
        services.do_update_room(None, room_id=room.pk, is_live=True)

    if room.last_seq < log_events:
        # A log to replay (sync storms): plain messages from the host.
        author = User.objects.get(username=host)
        for i in range(log_events - room.last_seq):
            services.do_send_message(author, room_id=room.pk, body=f"backlog line {i} " + "x" * 80)

    team = set(Membership.objects.filter(room=room).values_list("user__username", flat=True))

    def sessions_for(prefix: str, n: int, moderators: bool) -> list[str]:
        keys = []
        for i in range(n):
            name = f"{prefix}{i}"
            u = user(name)
            if name not in team and moderators:
                # Moderators are exempt from the member send rate limit (5 per 5 s).
                services.do_set_role(None, room_id=room.pk, username=name, role="moderator")
            s = SessionStore()
            s[SESSION_KEY] = str(u.pk)
            s[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            s[HASH_SESSION_KEY] = u.get_session_auth_hash()
            s.create()
            keys.append(s.session_key)
        return keys

    sessions = sessions_for(sender_prefix, senders, not members)
    team_sessions = sessions_for(team_prefix, team_senders, True)
    room.refresh_from_db()
    return {"room_id": room.pk, "slug": room.slug, "last_seq": room.last_seq, "sessions": sessions,
            "team_sessions": team_sessions}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slug", default="bench")
    p.add_argument("--senders", type=int, default=10)
    p.add_argument("--host-user", default="bench-host")
    p.add_argument("--sender-prefix", default="bench-sender-")
    p.add_argument("--not-live", dest="live", action="store_false")
    p.add_argument("--log-events", type=int, default=0, help="fill the room's log to at least this many events")
    p.add_argument("--members", action="store_true", help="senders are members, not moderators")
    p.add_argument("--team-senders", type=int, default=0, help="extra senders made moderators (the host team)")
    p.add_argument("--team-prefix", default="bench-team-")
    args = p.parse_args(argv)
    setup_django()
    out = make(args.slug, args.senders, args.host_user, args.sender_prefix, args.live, args.log_events, args.members,
               args.team_senders, args.team_prefix)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
