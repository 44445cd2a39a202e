"""Who may call the API: a signed-in user, or anyone when ALLOW_ANONYMOUS is on (then
acting as the built-in user, see ``services.acting_user``)."""

from django.conf import settings
from rest_framework.permissions import BasePermission


class SignedInOrAnonymousAllowed(BasePermission):
    """Read at request time, so a changed setting applies without restarting views."""

    def has_permission(self, request, view):
        return settings.ALLOW_ANONYMOUS or bool(request.user and request.user.is_authenticated)
