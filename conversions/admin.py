from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from conversions import selectors, services
from conversions.exceptions import Gone, IllegalTransition, NotFound
from conversions.models import Conversion, Document, PageResult
from conversions.webhook_admin import WebhookDeliveryInline, redeliver_webhooks
from workers import outputs


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["filename", "owner", "page_count", "size", "repaired", "created_at"]
    list_filter = ["repaired"]
    search_fields = ["filename", "id", "sha256"]
    readonly_fields = [field.name for field in Document._meta.fields]


PAGE_FIELDS = ("page_no", "status", "engine", "engine_reason", "duration_ms", "error", "files")


class PageResultInline(admin.TabularInline):
    model = PageResult
    fields = PAGE_FIELDS
    readonly_fields = PAGE_FIELDS
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("conversion__document")

    def has_add_permission(self, request, obj=None):
        return False  # pages are written by workers only

    @admin.display(description="Output files")
    def files(self, page: PageResult):
        """This page's files, once the conversion has published its outputs."""
        conversion = page.conversion
        if conversion.status != Conversion.Status.COMPLETED or not conversion.output_dir:
            return "-"
        stem = outputs.safe_stem(conversion.document.filename)
        return file_links(conversion, outputs.page_files(stem, page.page_no).values())


@admin.register(Conversion)
class ConversionAdmin(admin.ModelAdmin):
    """Read-only fields: every state change goes through services, via the actions."""

    list_display = [
        "id",
        "document",
        "status",
        "priority",
        "progress",
        "pages_done",
        "pages_total",
        "owner",
        "engine",
        "worker_id",
        "attempts",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "engine", "owner", "created_at"]
    search_fields = ["id", "document__filename"]
    list_select_related = ["document", "owner"]
    readonly_fields = [field.name for field in Conversion._meta.fields] + ["document_repair", "output_links"]
    inlines = [PageResultInline, WebhookDeliveryInline]
    actions = ["cancel", "retry", "raise_priority", "lower_priority", redeliver_webhooks]

    def apply(self, request, queryset, change, done: str) -> None:
        """Run one service per selected job; report what worked and why the rest did not."""
        succeeded = 0
        for conversion in queryset:
            try:
                changed = change(conversion)
                # The audit trail: a LogEntry, listed on the conversion's History page.
                self.log_change(request, conversion, f"{done}: now {changed.status}, priority {changed.priority}")
                succeeded += 1
            except IllegalTransition as refusal:
                self.message_user(request, refusal.detail, messages.WARNING)
        if succeeded:
            self.message_user(request, f"{done}: {succeeded} conversion(s).", messages.SUCCESS)

    @admin.action(description="Cancel selected conversions")
    def cancel(self, request, queryset):
        self.apply(request, queryset, lambda conversion: services.cancel_conversion(conversion=conversion), "Cancelled")

    @admin.action(description="Retry selected conversions (failed or cancelled)")
    def retry(self, request, queryset):
        self.apply(
            request, queryset, lambda conversion: services.retry_conversion(conversion=conversion), "Queued again"
        )

    @admin.action(description="Raise priority by 10")
    def raise_priority(self, request, queryset):
        self.apply(
            request,
            queryset,
            lambda conversion: services.set_priority(conversion=conversion, priority=conversion.priority + 10),
            "Priority raised",
        )

    @admin.action(description="Lower priority by 10")
    def lower_priority(self, request, queryset):
        self.apply(
            request,
            queryset,
            lambda conversion: services.set_priority(conversion=conversion, priority=conversion.priority - 10),
            "Priority lowered",
        )

    @admin.display(description="Document repair")
    def document_repair(self, conversion: Conversion) -> str:
        """Whether the document was a damaged PDF and what its repair recovered."""
        document = conversion.document
        return f"Repaired: {document.repair_note}" if document.repaired else "Not repaired"

    @admin.display(description="Outputs")
    def output_links(self, conversion: Conversion):
        """Links to the whole result and every output file; why there are none otherwise."""
        try:
            files = selectors.output_files(conversion)
        except (NotFound, Gone) as absent:  # Gone: RESULT_TTL_HOURS removed them
            return absent.detail
        except FileNotFoundError:
            return f"The output folder {conversion.output_dir} is missing."
        whole = format_html(
            '<a href="{}">Conversion page</a> · <a href="{}">Markdown</a> · <a href="{}">ZIP of all files</a>',
            reverse("conversion-page", args=[conversion.pk]),
            reverse("api:conversion-markdown", args=[conversion.pk]),
            reverse("api:conversion-zip", args=[conversion.pk]),
        )
        return format_html("{}<br>{}", whole, file_links(conversion, [path.name for path in files]))

    # --- the Queue page -------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view  # staff only; others go to the login page
        return [
            path("queue/", view(self.queue_view), name="conversions_conversion_queue"),
            path("queue/live/", view(self.queue_fragment_view), name="conversions_conversion_queue_live"),
        ] + super().get_urls()

    def queue_context(self, request) -> dict:
        if not self.has_view_permission(request):
            raise PermissionDenied
        snapshot = selectors.queue_snapshot(page_number=request.GET.get("page", 1))
        return {
            "snapshot": snapshot,
            "statuses": snapshot.counts.items(),
            "clusters": clusters_with_their_jobs(snapshot),
            "page_range": snapshot.queued.paginator.get_elided_page_range(snapshot.queued.number),
            "lease_seconds": settings.LEASE_SECONDS,
            "live_url": reverse("admin:conversions_conversion_queue_live"),
            "opts": self.model._meta,
        }

    def queue_view(self, request):
        """Queued jobs in run order, running jobs, throughput, clusters and counts, kept
        current by templates/admin/conversions/conversion/queue.html's script."""
        context = {**self.admin_site.each_context(request), **self.queue_context(request), "title": "Queue"}
        return TemplateResponse(request, "admin/conversions/conversion/queue.html", context)

    def queue_fragment_view(self, request):
        """The live part of the Queue page alone, which the page's script re-fetches."""
        return TemplateResponse(request, "admin/conversions/conversion/queue_live.html", self.queue_context(request))


def clusters_with_their_jobs(snapshot: selectors.QueueSnapshot) -> list[dict]:
    """Each cluster with its worker processes and the job each one runs (a running job's
    worker_id is "<host>:<pid>" of the worker process, see services.current_worker_id)."""
    by_worker = {task.worker_id: task for task in snapshot.active}
    return [
        {"stat": stat, "workers": [(pid, by_worker.get(f"{stat.host}:{pid}")) for pid in stat.workers]}
        for stat in snapshot.clusters
    ]


def file_links(conversion: Conversion, names) -> str:
    """Download links to output files, served by the API (which checks the owner)."""
    return format_html_join(
        " · ",
        '<a href="{}">{}</a>',
        ((reverse("api:conversion-file", args=[conversion.pk, name]), name) for name in names),
    )
