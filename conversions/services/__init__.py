"""Every write to documents and conversions (HackSoft style: one function per use case),
one module per use case, re-exported here so call sites read ``services.claim_next(...)``:

- ``transitions``: the status machine (every transition is one conditional UPDATE) and the
  claim of the next queued job (priority, then fair share);
- ``submission``: creating conversions and their task messages in one transaction
  (idempotency keys, per-user queue caps);
- ``running``: a running job's writes, its page checkpoints and its end;
- ``leases``: heartbeats, giving back jobs of workers that are gone, waking stranded jobs;
- ``user_requests``: cancel, retry, re-prioritise;
- ``documents``: storing uploads and downloads, repairs, deleting documents;
- ``accounts``: the anonymous owner and API tokens.
"""

from conversions.markdown_edits import save_markdown_edit
from conversions.services.accounts import (
    ANONYMOUS_USERNAME,
    acting_user,
    default_owner,
    issue_api_token,
    revoke_api_token,
)
from conversions.services.documents import (
    create_document,
    create_document_from_url,
    delete_documents_named,
    record_document_pages,
    record_document_repair,
    repair_fields,
)
from conversions.services.leases import (
    _give_back,
    release_conversion,
    renew_lease,
    requeue_expired_leases,
    requeue_jobs_of_dead_local_workers,
    wake_stranded_jobs,
)
from conversions.services.running import (
    LOADED_PROGRESS,
    _progress,
    _update_running,
    checkpoint_page,
    complete_conversion,
    completion_message,
    fail_conversion,
    finish_cancelled,
    record_finalizing,
    record_pdf_loaded,
    without_nul,
    without_nul_in_cell,
)
from conversions.services.submission import (
    TASK_FUNCTION,
    _enqueue,
    _lock_owner,
    create_conversion,
    ensure_queue_room,
    lock_owner,
    replayed,
    request_fingerprint,
    submit_conversion,
)
from conversions.services.transitions import (
    ALLOWED_TRANSITIONS,
    RUNNING_STATE,
    TRANSITION_STATE,
    _fairest_waiting,
    _finish,
    _owners_by_fair_share,
    _transition,
    claim_conversion,
    claim_next,
    current_worker_id,
)
from conversions.services.user_requests import (
    cancel_conversion,
    retry_conversion,
    set_priority,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ANONYMOUS_USERNAME",
    "RUNNING_STATE",
    "TASK_FUNCTION",
    "TRANSITION_STATE",
    "_enqueue",
    "_fairest_waiting",
    "_finish",
    "_give_back",
    "_lock_owner",
    "_owners_by_fair_share",
    "_progress",
    "_transition",
    "_update_running",
    "acting_user",
    "cancel_conversion",
    "checkpoint_page",
    "claim_conversion",
    "claim_next",
    "complete_conversion",
    "completion_message",
    "create_conversion",
    "create_document",
    "create_document_from_url",
    "current_worker_id",
    "default_owner",
    "delete_documents_named",
    "ensure_queue_room",
    "fail_conversion",
    "finish_cancelled",
    "issue_api_token",
    "lock_owner",
    "record_document_pages",
    "record_document_repair",
    "record_finalizing",
    "record_pdf_loaded",
    "LOADED_PROGRESS",
    "release_conversion",
    "renew_lease",
    "repair_fields",
    "replayed",
    "request_fingerprint",
    "requeue_expired_leases",
    "requeue_jobs_of_dead_local_workers",
    "retry_conversion",
    "revoke_api_token",
    "save_markdown_edit",
    "set_priority",
    "submit_conversion",
    "wake_stranded_jobs",
    "without_nul",
    "without_nul_in_cell",
]
