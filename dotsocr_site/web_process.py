"""Which web process answered: every HTTP response names it in ``X-Web-Process``.

With ``WEB_CONCURRENCY`` processes on one socket (dotsocr_site/web_tier.py) the kernel
picks the process for each connection; the header lets an operator (and the tests) see
which one served a request, as ``X-Served-By`` does behind CDNs. A process id says
nothing an attacker can use, so it is sent always, not only with DEBUG.
"""

import os

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.decorators import sync_and_async_middleware

HEADER = "X-Web-Process"


@sync_and_async_middleware
def web_process_header(get_response):
    """Middleware: ``X-Web-Process: <pid>`` on every response (async under daphne, so it
    adds no thread hop)."""
    pid = str(os.getpid())

    if iscoroutinefunction(get_response):

        async def middleware(request):
            response = await get_response(request)
            response[HEADER] = pid
            return response

        markcoroutinefunction(middleware)
        return middleware

    def middleware(request):
        response = get_response(request)
        response[HEADER] = pid
        return response

    return middleware
