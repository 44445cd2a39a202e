from django.contrib import admin

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
    """Read-only for now: state changes go through services (admin actions come later)."""

    list_display = ["id", "document", "status", "priority", "progress", "pages_done", "pages_total", "owner",
                    "engine", "worker_id", "attempts", "created_at"]
    list_filter = ["status", "engine", "created_at"]
    search_fields = ["id", "document__filename"]
    list_select_related = ["document", "owner"]
    readonly_fields = [field.name for field in Conversion._meta.fields]
    inlines = [PageResultInline]
