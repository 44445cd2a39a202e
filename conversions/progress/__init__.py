"""Progress: the one place where a conversion's state change becomes what a browser sees.

The path, one verb per step:

1. **A write** (conversions/services): every write of a job's state bumps its
   ``event_seq``; most hand back the row's new values (``UPDATE ... RETURNING``,
   conversions/returning.py, or the page checkpoint's one statement,
   conversions/checkpoints.py), which the caller's instance takes. After commit
   (``transaction.on_commit``) the service calls ``send_state_after_commit`` with that
   instance, or ``send_stored_state_after_commit`` with an id when the write returned
   nothing (the row is then read again).
2. **Build** (events.py): ``build_conversion_event`` turns the conversion into the event
   clients receive (``status``, ``progress``, ``message``, ``seq``, ...; DESIGN section 5).
3. **Send** (groups.py): ``send_state`` addresses it to the Channels groups
   ``conversion.<id>``, ``batch.<id>`` (if in a batch) and, on a change of status,
   ``queue`` (``build_group_messages``), and sends them on the channel layer: one INSERT
   on the caller's connection for the PostgreSQL layer, else on a long-lived event loop
   of the worker process (``sending_loop``). Never raises.
4. **Deliver** (fanout.py): in each web process one layer channel receives a group's
   messages and ``FanoutHub.deliver`` puts each in the inboxes of that process's
   subscribers; a WebSocket consumer (conversions/consumers.py) then ``deliver_event``s
   it to its socket, dropping one older (by ``seq``) than what it already sent.

On (re)connect a consumer sends a snapshot built from the database, so a lost event
never leaves a client wrong. Not progress: conversions/notify.py (PostgreSQL NOTIFY that
wakes idle workers when a task message commits) and conversions/webhooks.py (a final
state POSTed to a ``callback_url``).
"""

from conversions.progress.groups import (
    QUEUE_GROUP,
    batch_group,
    conversion_group,
    send_state,
    send_state_after_commit,
    send_stored_state,
    send_stored_state_after_commit,
)

__all__ = [
    "QUEUE_GROUP",
    "batch_group",
    "conversion_group",
    "send_state",
    "send_state_after_commit",
    "send_stored_state",
    "send_stored_state_after_commit",
]
