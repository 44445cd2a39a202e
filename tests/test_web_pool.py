"""The web process pools its database connections; the workers must not (django-q2 forks
after using the database, which a pool does not survive), and importing the ASGI app
must not hand the pool setting to processes started afterwards."""

import os
import subprocess
import sys

from tests.live import REPO, python_env

PROBE = """
import os
os.environ.pop("DB_POOL_MAX", None)
import dotsocr_site.asgi
from django.conf import settings
print(settings.DATABASES["default"]["OPTIONS"].get("pool", {}).get("max_size"), os.environ.get("DB_POOL_MAX"))
"""


def test_the_asgi_process_pools_and_leaves_no_setting_behind():
    env = {key: value for key, value in python_env().items() if key != "DB_POOL_MAX"}
    env["DJANGO_SETTINGS_MODULE"] = "dotsocr_site.settings"
    output = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert output == ["20", "None"]


def test_workers_do_not_pool(settings):
    assert "DB_POOL_MAX" not in os.environ
    assert "pool" not in settings.DATABASES["default"].get("OPTIONS", {})
