from django.core.management.base import BaseCommand

from rooms.management.commands._base import chat_errors_as_command_errors
from rooms.selectors import get_room
from rooms.services import do_set_role


class Command(BaseCommand):
    help = "Appoint a host or moderator of a room, or make them a plain member again."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("role", choices=["host", "moderator", "member"])

    def handle(self, *args, slug, username, role, **options):
        with chat_errors_as_command_errors():
            room = get_room(slug)
            do_set_role(None, room_id=room.pk, username=username, role=role)
        self.stdout.write(self.style.SUCCESS(f"{username} is now {role} of {slug}."))
