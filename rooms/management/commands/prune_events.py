import argparse

from django.core.management.base import BaseCommand

from rooms.errors import BadRequest
from rooms.management.commands._base import chat_errors_as_command_errors
from rooms.selectors import get_room
from rooms.services.retention import PRUNE_MAX_DAYS, PRUNE_MIN_DAYS, do_prune_events, validate_prune_days


def days(raw: str) -> int:
    # argparse turns this into "argument --older-than: <sentence>", a CommandError.
    try:
        return validate_prune_days(int(raw))
    except (ValueError, BadRequest):
        raise argparse.ArgumentTypeError(
            f"must be a whole number of days from {PRUNE_MIN_DAYS} to {PRUNE_MAX_DAYS}, not {raw!r}"
        ) from None


class Command(BaseCommand):
    help = (
        "Delete room log events older than DAYS days, and the chat messages they carry, in every room "
        "or in one (--room). Tips, the wallet ledger, notices and the moderation audit log are kept. "
        "Clients resuming from before the pruned point are told their history is truncated. "
        "This deletes unless --dry-run is given: the required --older-than is the explicit instruction, "
        "and the command is meant to run unattended from a timer. Try it with --dry-run first."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=days,
            required=True,
            metavar="DAYS",
            help=f"delete events stored more than DAYS days ago ({PRUNE_MIN_DAYS} to {PRUNE_MAX_DAYS})",
        )
        parser.add_argument("--room", metavar="SLUG", help="only this room")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")

    def handle(self, *args, older_than, room, dry_run, **options):
        with chat_errors_as_command_errors():
            room_id = get_room(room).pk if room is not None else None
            report = do_prune_events(None, older_than_days=older_than, room_id=room_id, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for p in report:
            self.stdout.write(
                f"{p.slug}: {verb} {p.events} events and {p.messages} messages, up to seq {p.pruned_through}"
            )
        events = sum(p.events for p in report)
        messages = sum(p.messages for p in report)
        summary = (
            f"Dry run: {events} events and {messages} messages in {len(report)} rooms would be deleted; "
            "nothing was changed."
            if dry_run
            else f"Deleted {events} events and {messages} messages in {len(report)} rooms."
        )
        self.stdout.write(self.style.SUCCESS(summary) if not dry_run else summary)
