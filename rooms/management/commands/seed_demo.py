from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from rooms.models import Room, Wallet
from rooms.services import do_create_room, do_grant_coins, do_send_message, do_set_role, do_update_room

DEMO_PASSWORD = "chatsite-demo"
PEOPLE = [
    # username, is_staff, is_superuser
    ("admin", True, True),
    ("streamer", False, False),
    ("mod", False, False),
    ("alice", False, False),
    ("bob", False, False),
]
# `check --deploy` fails while any of these still has DEMO_PASSWORD (rooms/checks.py).
DEMO_USERNAMES = [username for username, _, _ in PEOPLE]


class Command(BaseCommand):
    help = (
        "Create demo data if it is missing: an admin, a live room hosted by 'streamer' "
        f"with moderator 'mod', and viewers 'alice' and 'bob' with 1000 coins each (password {DEMO_PASSWORD!r}). "
        "Safe to run again. For trying chatsite out, never on a public site: the password is published."
    )

    def handle(self, *args, **options):
        User = get_user_model()
        with transaction.atomic():
            for username, is_staff, is_superuser in PEOPLE:
                user, created = User.objects.get_or_create(
                    username=username, defaults={"is_staff": is_staff, "is_superuser": is_superuser}
                )
                if created:
                    user.set_password(DEMO_PASSWORD)
                    user.save()
                if not Wallet.objects.filter(user=user).exists():
                    do_grant_coins(None, user_id=user.pk, amount=1000, note="demo coins")
            if not Room.objects.filter(slug="lobby").exists():
                room = do_create_room(None, slug="lobby", title="Friday night speedruns", host_username="streamer")
                do_set_role(None, room_id=room.pk, username="mod", role="moderator")
                do_update_room(None, room_id=room.pk, is_live=True)
                do_send_message(User.objects.get(username="streamer"), room_id=room.pk, body="Welcome in! Say hi 👋")
            if not Room.objects.filter(slug="chill").exists():
                do_create_room(None, slug="chill", title="Lo-fi and chill", host_username="streamer")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo ready: rooms 'lobby' (live) and 'chill'; users {', '.join(p[0] for p in PEOPLE)} "
                f"with password {DEMO_PASSWORD!r}."
            )
        )
