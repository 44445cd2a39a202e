"""Input and output shapes of the native API. No business rules here."""

from collections.abc import Callable

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from conversions import selectors
from conversions.api import fast_fields
from conversions.models import Batch, Conversion, Document, PageResult
from conversions.queue_position import queue_position, with_queue_positions
from workers.markdown_pictures import IMAGE_MODES
from workers.ocr import ENGINES
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = [
            "id",
            "filename",
            "size",
            "sha256",
            "page_count",
            "content_type",
            "kind",
            "source_url",
            "repaired",
            "repair_note",
            "created_at",
        ]


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class DocumentSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "filename", "page_count", "repaired", "repair_note"]


class ConversionSerializer(serializers.ModelSerializer):
    document = DocumentSummarySerializer(read_only=True)
    links = serializers.SerializerMethodField()
    pages = serializers.CharField(source="page_selection", read_only=True)
    queue_position = serializers.SerializerMethodField(
        help_text="Queued: how many queued conversions will be claimed before this one (0: next); else null."
    )

    class Meta:
        model = Conversion
        fields = [
            "id",
            "document",
            "batch",
            "status",
            "priority",
            "engine",
            "prompt_mode",
            "pages",
            "on_page_error",
            "progress",
            "message",
            "pages_total",
            "pages_done",
            "pages_failed",
            "queue_position",
            "attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "expired_at",
            "links",
            "callback_url",
        ]

    def get_queue_position(self, conversion) -> int | None:
        return queue_position(conversion)

    def get_links(self, conversion) -> dict:
        return conversion_links(conversion.pk)

    def to_representation(self, conversion):
        """The fields above, the known ones read straight off the row (fast_fields.py:
        DRF's per-field machinery was most of a list request's time, bench/ `lists`); any
        other field the usual way. Same output as ModelSerializer's (tests/test_list_speed.py)."""
        return fast_fields.represent(self, conversion, CONVERSION_FAST_FIELDS)


LINKS = ("detail", "markdown", "html", "text", "pages", "cancel", "retry")


def conversion_links(conversion_id) -> dict:
    """The conversion's API links: each route reversed once per script prefix with a
    placeholder id, then filled in (reverse() per link per row was a list's largest cost)."""
    return fast_fields.filled_routes("api:conversion", LINKS, conversion_id)


CONVERSION_FAST_FIELDS = {
    "id": fast_fields.uuid_text("pk"),
    "document": lambda conversion: fast_fields.plain(conversion.document, DOCUMENT_SUMMARY_FIELDS),
    "batch": lambda conversion: conversion.batch_id,
    "pages": lambda conversion: conversion.page_selection,
    "links": lambda conversion: conversion_links(conversion.pk),
    "queue_position": queue_position,
    "pages_failed": lambda conversion: conversion.pages_failed,
    **{
        name: fast_fields.text(name)
        for name in ("status", "engine", "prompt_mode", "message", "error", "on_page_error", "callback_url")
    },
    **{name: fast_fields.integer(name) for name in ("priority", "progress", "pages_total", "pages_done", "attempts")},
    **{name: fast_fields.moment(name) for name in ("created_at", "started_at", "finished_at", "expired_at")},
}
# The columns a listed conversion is read with (ConversionListView reads values, not model
# instances): every attribute CONVERSION_FAST_FIELDS and queue_position read, and the document's.
LISTED_CONVERSION_COLUMNS = (
    "id",
    "owner_id",
    "batch_id",
    "status",
    "priority",
    "engine",
    "prompt_mode",
    "page_selection",
    "on_page_error",
    "progress",
    "message",
    "pages_total",
    "pages_done",
    "pages_failed",
    "attempts",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "expired_at",
    "callback_url",
)
DOCUMENT_SUMMARY_FIELDS: dict[str, Callable[[Document], object]] = {
    "id": fast_fields.uuid_text("pk"),
    "filename": fast_fields.text("filename"),
    "page_count": fast_fields.integer("page_count"),
    "repaired": lambda document: document.repaired,
    "repair_note": fast_fields.text("repair_note"),
}
LISTED_DOCUMENT_COLUMNS = tuple(DOCUMENT_SUMMARY_FIELDS)  # each field is the column of its name


class ConversionOptionsSerializer(serializers.Serializer):
    """Options shared by single conversions and batches."""

    engine = serializers.ChoiceField(choices=ENGINES, required=False)
    prompt_mode = serializers.ChoiceField(choices=PROMPT_MODES, default=DEFAULT_PROMPT_MODE)
    priority = serializers.IntegerField(default=0, min_value=-1000, max_value=1000)
    pages = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=1000,
        help_text='Pages to convert, 1-based: "1-3,7,10-". Blank: all.',
    )
    on_page_error = serializers.ChoiceField(
        choices=["fail", "skip"],
        default="fail",
        help_text="A page that still fails after the engine's retries: `fail` the job, or `skip` it (listed in "
        "pages_failed, marked in the Markdown) and complete the others.",
    )
    callback_url = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2048,
        help_text="An http(s) URL that receives the final state as a signed webhook event (README: Webhooks).",
    )

    def validate(self, data):
        data.setdefault("engine", settings.OCR_ENGINE)
        return data


class ConversionCreateSerializer(ConversionOptionsSerializer):
    """Upload a ``file`` (one call), give a ``source_url`` to download, or name an
    uploaded ``document``."""

    file = serializers.FileField(required=False, allow_empty_file=True)
    source_url = serializers.CharField(required=False, max_length=2048)
    document = serializers.UUIDField(required=False)

    def validate(self, data):
        if sum(name in data for name in ("file", "source_url", "document")) != 1:
            raise serializers.ValidationError(
                "Give exactly one of 'file' (an upload), 'source_url' (a URL to download) or 'document' (an id)."
            )
        return super().validate(data)


class ConversionPrioritySerializer(serializers.Serializer):
    priority = serializers.IntegerField(min_value=-1000, max_value=1000)


class ConversionListFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Conversion.Status.choices, required=False)


class MarkdownQuerySerializer(serializers.Serializer):
    """How pictures appear in served Markdown: ``links`` (absolute URLs of the files,
    the default: small, cacheable), ``embedded`` (data URLs: self-contained, ~4/3 of the
    JPEG bytes each) or ``none``."""

    images = serializers.ChoiceField(choices=IMAGE_MODES, default="links")
    headers_footers = serializers.BooleanField(default=True)


class PageResultSerializer(serializers.ModelSerializer):
    """A page with its Markdown as served (context ``serve``: text -> text), a user's edit
    included; ``edited`` says whether there is one."""

    markdown = serializers.SerializerMethodField()
    markdown_nohf = serializers.SerializerMethodField()
    edited = serializers.SerializerMethodField()

    class Meta:
        model = PageResult
        fields = [
            "page_no",
            "source_page",
            "status",
            "engine",
            "engine_reason",
            "duration_ms",
            "error",
            "cells",
            "markdown",
            "markdown_nohf",
            "edited",
        ]

    def served(self, text: str) -> str:
        serve = self.context.get("serve")
        return serve(text) if serve else text

    def get_markdown(self, page) -> str:
        return self.served(selectors.page_markdown(page, headers_footers=True))

    def get_markdown_nohf(self, page) -> str:
        return self.served(selectors.page_markdown(page))

    def get_edited(self, page) -> bool:
        return page.markdown_edited is not None


class BatchCreateSerializer(ConversionOptionsSerializer):
    """Several ``file`` parts and/or ``source_url`` values; the options apply to each."""

    file = serializers.ListField(child=serializers.FileField(allow_empty_file=True), required=False, default=list)
    source_url = serializers.ListField(child=serializers.CharField(max_length=2048), required=False, default=list)


class BatchSerializer(serializers.ModelSerializer):
    total = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    conversions = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta:
        model = Batch
        fields = ["id", "created_at", "total", "counts", "conversions", "links"]

    def get_counts(self, batch) -> dict:
        return selectors.batch_counts(batch)

    def get_total(self, batch) -> int:
        return sum(self.get_counts(batch).values())

    def get_conversions(self, batch) -> list:
        return list(ConversionSerializer(with_queue_positions(selectors.batch_conversions(batch)), many=True).data)

    def get_links(self, batch) -> dict:
        return {"detail": reverse("api:batch-detail", args=[batch.pk]), "events": f"/ws/v1/batches/{batch.pk}"}
