"""Users as the service acts for them: the built-in anonymous owner and API tokens."""

from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

ANONYMOUS_USERNAME = "anonymous"


def default_owner():
    """The built-in user anonymous requests act as (ALLOW_ANONYMOUS) and the CLI queues as."""
    user, created = get_user_model().objects.get_or_create(username=ANONYMOUS_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def acting_user(user):
    """The signed-in user, or the built-in user an anonymous request acts as. Whether
    anonymous requests are let in at all (ALLOW_ANONYMOUS) is decided before, by the view."""
    return user if user is not None and user.is_authenticated else default_owner()


def issue_api_token(*, user, reset: bool = False) -> str:
    """The user's API token, created when missing; ``reset`` replaces an existing one."""
    with transaction.atomic():
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token.key


def revoke_api_token(*, user) -> bool:
    """Delete the user's API token; False when there was none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)
