"""PostgreSQL LISTEN/NOTIFY for task messages: a worker cluster idle on an empty queue
wakes when a message is committed, instead of at its next poll.

A trigger on django-q2's message table (django_q_ormq) sends ``NOTIFY`` on the channel
below for every message inserted, whichever code path queued it (a conversion, a batch,
a retry, a release, the reaper's wake-ups). PostgreSQL delivers a notification only when
the transaction that sent it commits, so a listener never sees a message that is not
there yet, and a rolled-back enqueue wakes nobody. The payload is the message's queue
(``OrmQ.key``, the cluster name). Graphile Worker and procrastinate wake their workers
the same way.
"""

CHANNEL = "dotsocr_task_message"
FUNCTION = "dotsocr_notify_task_message"
TRIGGER = "dotsocr_notify_task_message"

CREATE_TRIGGER = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', NEW.key);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS {TRIGGER} ON django_q_ormq;
CREATE TRIGGER {TRIGGER} AFTER INSERT ON django_q_ormq FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();
"""

DROP_TRIGGER = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON django_q_ormq;
DROP FUNCTION IF EXISTS {FUNCTION}();
"""
