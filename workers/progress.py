"""Temporary: the old names of conversions/progress (groups.py), until the call sites in
conversions/services are renamed. Remove with that change."""

from conversions.progress.groups import send_state as publish_state
from conversions.progress.groups import send_state_after_commit as publish_state_after_commit
from conversions.progress.groups import send_stored_state as publish
from conversions.progress.groups import send_stored_state_after_commit as publish_after_commit

__all__ = ["publish", "publish_after_commit", "publish_state", "publish_state_after_commit"]
