"""Settings of the test process: the service's own, given a SECRET_KEY made for this run.

DEBUG is off in tests as in production, where settings refuse to start without a key;
child processes (daphne, qcluster) inherit this key through the environment.
"""

import os
import secrets

if not os.environ.get("SECRET_KEY"):
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)

from dotsocr_site.settings import *  # noqa: E402,F401,F403
