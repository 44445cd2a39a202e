"""Documents, conversion jobs and their per-page checkpoints (DESIGN.md section 3).

Models hold data and invariants only; every write that changes a job's state lives in
``conversions.services``.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class Document(models.Model):
    """An uploaded file (PDF, image, Office or text document), stored under a server-chosen name."""

    class Kind(models.TextChoices):
        PDF = "pdf"
        IMAGE = "image"  # each frame a page (workers/inputs/images.py)
        OFFICE = "office"  # Office and text documents, converted by LibreOffice in the worker

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    filename = models.CharField(max_length=255, help_text="The client's file name, for display only.")
    stem = models.CharField(max_length=100, db_index=True, help_text="File-system-safe stem; names the outputs.")
    stored_path = models.CharField(
        max_length=500, unique=True, help_text="Storage key of the file: uploads/<uuid><suffix>."
    )
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    # A damaged PDF whose pages qpdf recovered (workers/inputs/repair.py): stored_path is
    # then the repaired file, original_path the file as it was uploaded.
    repaired = models.BooleanField(default=False)
    repair_note = models.CharField(max_length=300, blank=True, default="", help_text="What the repair recovered.")
    original_path = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Storage key of the file as uploaded, when the stored one is its repair.",
    )
    page_count = models.PositiveIntegerField(
        null=True, blank=True, help_text="Unknown (null) for Office documents until a worker has converted one."
    )
    content_type = models.CharField(max_length=100, default="application/pdf", help_text="Detected from the bytes.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PDF)
    source_url = models.URLField(max_length=2048, blank=True, default="", help_text="Where it was downloaded from.")
    # Set when RESULT_TTL_HOURS removed its files (conversions/retention.py); the row stays.
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When its stored file was removed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.filename


class Batch(models.Model):
    """Conversions submitted together in one request; its counts per status are derived."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"batch {self.pk}"


class Conversion(models.Model):
    """One conversion job of one document."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="conversions")
    # No index of its own: (owner, -created_at) and (owner, idempotency_key) start with it.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversions", db_index=False
    )
    batch = models.ForeignKey(Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="conversions")
    page_selection = models.CharField(
        max_length=1000, blank=True, default="", help_text='The pages asked for, 1-based ("1-3,7,10-"); blank: all.'
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Where the final state is POSTed as a signed event (conversions/webhooks.py); blank: nowhere.
    callback_url = models.URLField(max_length=2048, blank=True, default="")
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    engine = models.CharField(max_length=32, default="auto")
    prompt_mode = models.CharField(max_length=64, default="prompt_layout_all_en")
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True, default="")
    pages_total = models.PositiveIntegerField(null=True, blank=True)
    pages_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    error = models.TextField(blank=True, default="")
    worker_id = models.CharField(max_length=200, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # What a page that still fails after the engine's retries does to the job
    # (conversions/partial.py): "fail" it (the default), or "skip" the page, recorded with
    # its reason in pages_failed, and complete the others.
    on_page_error = models.CharField(max_length=8, choices=[("fail", "fail"), ("skip", "skip")], default="fail")
    pages_failed = models.JSONField(
        default=list, blank=True, help_text="Pages without a result, set on completion: [{page, source_page, reason}]."
    )
    output_bytes = models.BigIntegerField(default=0, help_text="Bytes of the output folder when it was published.")
    expired_at = models.DateTimeField(null=True, blank=True, help_text="When RESULT_TTL_HOURS removed its files.")
    output_dir = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Storage prefix of the published outputs, outputs/<id>/<attempt>; set on completion only.",
    )
    # Edits are per page (PageResult.markdown_edited); migration 0011 moved the whole-
    # document edits of one-page conversions there. Kept only for older, longer ones.
    markdown_edited = models.TextField(
        null=True, blank=True, help_text="Legacy: a whole-document edit from before edits were per page; not shown."
    )
    # Bumped by every write; progress events carry it so clients drop stale ones.
    event_seq = models.PositiveBigIntegerField(default=0)
    # A client's Idempotency-Key for the create call (unique per owner), and a hash of
    # what that call asked for, so a key reused for another request is refused.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["status", "-created_at"]),
            # The order in which queued jobs run: priority, then age.
            models.Index(
                fields=["-priority", "created_at"], condition=Q(status="queued"), name="conversion_queue_order"
            ),
            # Counts per status (Queue page, /metrics) as an index-only scan: with five
            # values, deduplication keeps it a fraction of the (status, -created_at) one.
            models.Index(fields=["status"], name="conversion_status"),
            # Fair share (services.claim_next, conversions/queue_position.py): queued jobs
            # per owner and priority, oldest first, without reading the table.
            models.Index(
                fields=["owner", "-priority", "created_at", "id"],
                condition=Q(status="queued"),
                name="conversion_queue_by_owner",
            ),
            # Fair share (conversions/claiming.py): an owner's running jobs and when it was
            # last served, each one index probe however long the owner's history.
            models.Index(fields=["owner"], condition=Q(status="running"), name="conversion_running_by_owner"),
            models.Index(fields=["owner", "started_at"], name="conversion_owner_started"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "completed", "failed", "cancelled"]),
                name="conversion_status_valid",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="conversion_progress_at_most_100"),
            models.UniqueConstraint(fields=["owner", "idempotency_key"], name="one_conversion_per_idempotency_key"),
        ]

    def __str__(self):
        return f"{self.document.filename} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED, self.Status.CANCELLED)


class PageResult(models.Model):
    """One page of one conversion; written once, in its own transaction (the checkpoint)."""

    class Status(models.TextChoices):
        DONE = "done"
        FAILED = "failed"

    # No index of its own: the unique (conversion, page_no) starts with it.
    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="pages", db_index=False)
    page_no = models.PositiveIntegerField(help_text="0-based, as in the original app's file names.")
    source_page = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The page of the document it was read from, 1-based (differs from "
        "page_no + 1 when only some pages were asked for).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DONE)
    cells = models.JSONField(default=list, help_text="Layout cells: [{bbox, category, text}].")
    markdown = models.TextField(blank=True, default="")
    markdown_nohf = models.TextField(blank=True, default="", help_text="Without page headers and footers.")
    markdown_edited = models.TextField(null=True, blank=True, help_text="A user's edit; the model's text is kept.")
    engine = models.CharField(max_length=64, help_text="The engine path that produced this page.")
    engine_reason = models.TextField(blank=True, default="", help_text="Why that engine path, in words.")
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["conversion", "page_no"]
        # Throughput over the last minutes (Queue page) reads only recent pages.
        indexes = [models.Index(fields=["created_at"], name="pageresult_created_at")]
        constraints = [models.UniqueConstraint(fields=["conversion", "page_no"], name="one_result_per_page")]

    def __str__(self):
        return f"page {self.page_no} of {self.conversion_id}"


class WebhookDelivery(models.Model):
    """One event for one conversion's ``callback_url`` (conversions/webhooks.py): its body
    is fixed when the event happens, and its id is the ``webhook-id`` of every attempt,
    so a receiver can drop a repeat (delivery is at least once)."""

    class State(models.TextChoices):
        PENDING = "pending"  # an attempt is due at next_attempt_at
        DELIVERED = "delivered"  # a 2xx answer
        FAILED = "failed"  # every attempt of the retry schedule failed; an admin may redeliver

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversion = models.ForeignKey(Conversion, on_delete=models.CASCADE, related_name="webhook_deliveries")
    event_type = models.CharField(max_length=64, help_text='"conversion.completed", ".failed" or ".cancelled".')
    url = models.URLField(max_length=2048)
    body = models.TextField(help_text="The exact JSON sent (and signed) on every attempt.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    tries = models.PositiveIntegerField(default=0, help_text="Attempts since the event (or the last redelivery).")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The reaper's sweep for deliveries whose message was lost.
        indexes = [models.Index(fields=["next_attempt_at"], condition=Q(state="pending"), name="webhook_delivery_due")]

    def __str__(self):
        return f"{self.event_type} {self.pk}"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.pk.hex}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, the HTTP status (null when none came), how long, why it failed."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["delivery", "started_at"]

    def __str__(self):
        return f"attempt of {self.delivery_id} at {self.started_at}"
