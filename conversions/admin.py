from django.contrib import admin, messages

from conversions import services
from conversions.exceptions import IllegalTransition
from conversions.models import Conversion, Document, PageResult


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["filename", "owner", "page_count", "size", "created_at"]
    search_fields = ["filename", "id", "sha256"]
    readonly_fields = [field.name for field in Document._meta.fields]


class PageResultInline(admin.TabularInline):
    model = PageResult
    fields = ["page_no", "status", "engine", "duration_ms", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversion)
class ConversionAdmin(admin.ModelAdmin):
    """Read-only fields: every state change goes through services, via the actions."""

    list_display = ["id", "document", "status", "priority", "progress", "pages_done", "pages_total", "owner",
                    "engine", "worker_id", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "engine", "owner", "created_at"]
    search_fields = ["id", "document__filename"]
    list_select_related = ["document", "owner"]
    readonly_fields = [field.name for field in Conversion._meta.fields]
    inlines = [PageResultInline]
    actions = ["cancel", "retry", "raise_priority", "lower_priority"]

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
        self.apply(request, queryset, lambda conversion: services.retry_conversion(conversion=conversion), "Queued again")

    @admin.action(description="Raise priority by 10")
    def raise_priority(self, request, queryset):
        self.apply(request, queryset, lambda conversion: services.set_priority(
            conversion=conversion, priority=conversion.priority + 10), "Priority raised")

    @admin.action(description="Lower priority by 10")
    def lower_priority(self, request, queryset):
        self.apply(request, queryset, lambda conversion: services.set_priority(
            conversion=conversion, priority=conversion.priority - 10), "Priority lowered")
