"""The reference of bench/web_tier.py: a bare Django project with one view, served by
daphne (`python -m daphne bench.bare_django:application`). No database, no middleware,
no Channels routing: what Django + daphne themselves can do on this machine."""

import os

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-reference-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
    )

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def health(request):
    response = JsonResponse({"status": "healthy", "service": "reference"})
    response["X-Web-Process"] = str(os.getpid())  # as the service's own header, for the split
    return response


urlpatterns = [path("health", health)]
application = get_asgi_application()
if int(os.environ.get("WEB_CONCURRENCY", "1")) > 1:  # as the service's processes on one socket
    from dotsocr_site.patches import twisted as twisted_patches

    twisted_patches.install_one_accept()
