from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from rooms.management.commands._base import chat_errors_as_command_errors
from rooms.services import do_grant_coins


class Command(BaseCommand):
    help = "Credit coins to a user's wallet (written to the ledger)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("amount", type=int)
        parser.add_argument("--note", default="", help="why, for the ledger")

    def handle(self, *args, username, amount, note, **options):
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        with chat_errors_as_command_errors():
            wallet = do_grant_coins(None, user_id=user.pk, amount=amount, note=note or "manage.py grant_coins")
        self.stdout.write(self.style.SUCCESS(f"{username} now has {wallet.balance} coins."))
