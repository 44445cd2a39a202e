"""`manage.py token create USERNAME [--reset]` prints the user's API token;
`manage.py token revoke USERNAME` deletes it."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from conversions import services


class Command(BaseCommand):
    help = "Create (print) or revoke a user's API token, sent as `Authorization: Token <key>`."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["create", "revoke"])
        parser.add_argument("username")
        parser.add_argument("--reset", action="store_true", help="create: replace an existing token")

    def handle(self, *args, action, username, reset, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user named {username!r}.") from None
        if action == "create":
            self.stdout.write(services.issue_api_token(user=user, reset=reset))
        elif services.revoke_api_token(user=user):
            self.stdout.write(f"Revoked the token of {username}.")
        else:
            self.stdout.write(f"{username} had no token.")
