from django.core.management.base import BaseCommand

from rooms.management.commands._base import chat_errors_as_command_errors
from rooms.selectors import get_room
from rooms.services import do_announce, do_site_announce


class Command(BaseCommand):
    help = "Post a notice to one room (--room SLUG) or to every room (--site)."

    def add_arguments(self, parser):
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--room", metavar="SLUG")
        where.add_argument("--site", action="store_true")
        parser.add_argument("--level", choices=["info", "warning"], default="info")
        parser.add_argument("text")

    def handle(self, *args, room, site, level, text, **options):
        with chat_errors_as_command_errors():
            if site:
                do_site_announce(None, body=text, level=level)
                self.stdout.write(self.style.SUCCESS("Site notice posted to every room."))
            else:
                target = get_room(room)
                do_announce(None, room_id=target.pk, body=text, level=level)
                self.stdout.write(self.style.SUCCESS(f"Notice posted to {target.slug}."))
