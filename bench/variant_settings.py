"""The project's settings with experimental changes, for `python -m bench --variant ...`.

The benchmark's children (daphne, qcluster) and the bench process load this module
instead of dotsocr_site.settings when a variant is asked for, so a proposed settings
change can be measured side by side with the shipped one before anyone adopts it.
``BENCH_VARIANTS`` (comma-separated) names the changes:

  db_pool     PostgreSQL connections from a psycopg pool (Django >= 5.1) instead of
              CONN_MAX_AGE=60: under ASGI every request runs in a thread of its own, so
              "persistent" per-thread connections are opened anew per request and pile up.
              The bench applies it to daphne only (harness.WEB_ONLY_VARIANTS): qcluster
              forks its processes after using the database, and a pool inherited across
              fork breaks them ("the last operation didn't produce records").
  poll_20ms   django-q2's broker polls an empty queue every 20 ms instead of 100 ms (an
              indexed LIMIT 1 query: 50/s per cluster when idle), for pickup latency.
  no_success  django-q2 keeps no rows for successful tasks (save_limit -1): with
              save_limit 1000 its monitor locks and reads every saved success row, for
              every task, to prune the oldest.
"""

import os

from dotsocr_site.settings import *  # noqa: F401,F403
from dotsocr_site.settings import DATABASES, Q_CLUSTER

VARIANTS = {name.strip() for name in os.environ.get("BENCH_VARIANTS", "").split(",") if name.strip()}
KNOWN = {"db_pool", "no_success", "poll_20ms"}
if VARIANTS - KNOWN:
    raise ValueError(f"unknown BENCH_VARIANTS {sorted(VARIANTS - KNOWN)}; known: {sorted(KNOWN)}")

if "db_pool" in VARIANTS:
    for alias in ("default", "channels_postgres"):
        DATABASES[alias] = {
            **DATABASES[alias],
            "CONN_MAX_AGE": 0,  # the pool keeps connections; Django refuses both at once
            "CONN_HEALTH_CHECKS": False,
            "OPTIONS": {**DATABASES[alias].get("OPTIONS", {}), "pool": {"min_size": 2, "max_size": 16, "timeout": 10}},
        }

if "poll_20ms" in VARIANTS:
    Q_CLUSTER["poll"] = 0.02

if "no_success" in VARIANTS:
    Q_CLUSTER["save_limit"] = -1
