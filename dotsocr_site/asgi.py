"""ASGI entry point for daphne: HTTP (Django) and WebSockets (Channels)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotsocr_site.settings")
# The web process pools its database connections (see DB_POOL_MAX in settings); the
# variable is removed again so that processes started from here do not inherit it.
pool_chosen_here = "DB_POOL_MAX" not in os.environ
if pool_chosen_here:
    os.environ["DB_POOL_MAX"] = "20"
django_asgi_app = get_asgi_application()
if pool_chosen_here:
    del os.environ["DB_POOL_MAX"]

from django.conf import settings  # noqa: E402

from dotsocr_site.patches import daphne as daphne_patches  # noqa: E402
from dotsocr_site.patches import twisted as twisted_patches  # noqa: E402

# daphne refuses oversized bodies as they stream, and sweeps its sockets in slices
daphne_patches.install(settings.MAX_UPLOAD_MB, settings.MAX_BATCH_UPLOAD_MB)
if settings.WEB_CONCURRENCY > 1:
    twisted_patches.install_one_accept()  # processes sharing one socket take turns (dotsocr_site/web_tier.py)

# Imported after Django is set up: consumers use the ORM.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from conversions.routing import websocket_urlpatterns  # noqa: E402
from conversions.waiting import WaitingRequests  # noqa: E402
from conversions.ws_auth import TokenAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Prefer: wait on the API waits here, on the event loop, holding no thread.
        "http": WaitingRequests(django_asgi_app),
        # The session user first; a token, when the client sends one, replaces it.
        "websocket": AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)

# The collector's full passes stop the event loop, and every socket with it, for as
# long as they take: 140 ms here over the startup heap alone, 170-210 ms with 1000
# sockets (bench/ws_fanout.py, then most of its p99). What has been loaded so far lives
# as long as the process, so it is frozen out of those passes, and they run after 1000
# younger passes instead of 10: cyclic garbage waits longer, memory grows a little.
gc.collect()
gc.freeze()
young, middle, _ = gc.get_threshold()
gc.set_threshold(young, middle, 1000)
