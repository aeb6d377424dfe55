from django.core.management.base import BaseCommand

from rooms.management.commands._base import chat_errors_as_command_errors
from rooms.services import do_create_room


class Command(BaseCommand):
    help = "Create a room owned by a host (an existing user)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--title", required=True)
        parser.add_argument("--host", required=True, help="username of the room's owner")

    def handle(self, *args, slug, title, host, **options):
        with chat_errors_as_command_errors():
            room = do_create_room(None, slug=slug, title=title, host_username=host)
        self.stdout.write(self.style.SUCCESS(f"Created room {room.slug!r} hosted by {host}."))
