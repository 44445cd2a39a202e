"""Webhook deliveries in the admin: an inline on the conversion's page with every
attempt, and a redeliver action (on conversions and on deliveries)."""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from conversions import webhooks
from conversions.models import WebhookDelivery


def attempts_table(delivery: WebhookDelivery) -> str:
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td></tr>",
        (
            (
                attempt.started_at.isoformat(timespec="milliseconds"),
                attempt.status_code or "-",
                attempt.duration_ms,
                attempt.error or "",
            )
            for attempt in delivery.attempts.all()
        ),
    )
    if not rows:
        return "none yet"
    return format_html(
        "<table><tr><th>time</th><th>HTTP status</th><th>duration</th><th>error</th></tr>{}</table>", rows
    )


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = readonly_fields = (
        "webhook_id",
        "event_type",
        "url",
        "state",
        "tries",
        "next_attempt_at",
        "created_at",
        "attempt_log",
    )
    extra = 0
    can_delete = False
    verbose_name_plural = "Webhook deliveries (redeliver with the action on the conversion list)"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("attempts")

    def has_add_permission(self, request, obj=None):
        return False  # events come from state changes only

    @admin.display(description="Attempts")
    def attempt_log(self, delivery: WebhookDelivery):
        return attempts_table(delivery)


def redeliver_all(modeladmin, request, deliveries) -> None:
    count = 0
    for delivery in deliveries:
        webhooks.redeliver(delivery=delivery)
        modeladmin.log_change(request, delivery.conversion, f"Webhook {delivery.webhook_id} redelivered")
        count += 1
    modeladmin.message_user(request, f"Redelivering {count} webhook event(s).", messages.SUCCESS)


@admin.action(description="Redeliver the webhook events of the selected conversions")
def redeliver_webhooks(modeladmin, request, queryset):
    """Each event of each selected conversion again, with its webhook-id and body."""
    deliveries = WebhookDelivery.objects.filter(conversion__in=queryset).select_related("conversion")
    if not deliveries.exists():
        modeladmin.message_user(request, "The selected conversions have no webhook events.", messages.WARNING)
        return
    redeliver_all(modeladmin, request, deliveries)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["webhook_id", "event_type", "conversion", "url", "state", "tries", "next_attempt_at", "created_at"]
    list_filter = ["state", "event_type"]
    search_fields = ["id", "conversion__id", "url"]
    list_select_related = ["conversion__document"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields] + ["attempt_log"]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Attempts")
    def attempt_log(self, delivery: WebhookDelivery):
        return attempts_table(delivery)

    @admin.action(description="Redeliver the selected webhook events")
    def redeliver(self, request, queryset):
        redeliver_all(self, request, queryset.select_related("conversion"))
