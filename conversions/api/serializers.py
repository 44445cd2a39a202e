"""Input and output shapes of the native API. No business rules here."""

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from conversions import selectors
from conversions.models import Conversion, Document, PageResult
from workers.markdown_pictures import IMAGE_MODES
from workers.ocr import ENGINES
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "filename", "size", "sha256", "page_count", "content_type", "kind", "repaired", "repair_note",
                  "created_at"]


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class DocumentSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "filename", "page_count", "repaired", "repair_note"]


class ConversionSerializer(serializers.ModelSerializer):
    document = DocumentSummarySerializer(read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Conversion
        fields = [
            "id", "document", "status", "priority", "engine", "prompt_mode", "progress", "message",
            "pages_total", "pages_done", "attempts", "error", "created_at", "started_at", "finished_at", "links",
        ]

    def get_links(self, conversion) -> dict:
        return {
            name: reverse(f"api:conversion-{name}", args=[conversion.pk])
            for name in ("detail", "markdown", "pages", "cancel", "retry")
        }


class ConversionCreateSerializer(serializers.Serializer):
    """Either upload a ``file`` (one call) or name an uploaded ``document``."""

    file = serializers.FileField(required=False, allow_empty_file=True)
    document = serializers.UUIDField(required=False)
    engine = serializers.ChoiceField(choices=ENGINES, required=False)
    prompt_mode = serializers.ChoiceField(choices=PROMPT_MODES, default=DEFAULT_PROMPT_MODE)
    priority = serializers.IntegerField(default=0, min_value=-1000, max_value=1000)

    def validate(self, data):
        if ("file" in data) == ("document" in data):
            raise serializers.ValidationError("Give exactly one of 'file' (an upload) or 'document' (an id).")
        data.setdefault("engine", settings.OCR_ENGINE)
        return data


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
        fields = ["page_no", "status", "engine", "duration_ms", "error", "cells", "markdown", "markdown_nohf", "edited"]

    def served(self, text: str) -> str:
        serve = self.context.get("serve")
        return serve(text) if serve else text

    def get_markdown(self, page) -> str:
        return self.served(selectors.page_markdown(page, headers_footers=True))

    def get_markdown_nohf(self, page) -> str:
        return self.served(selectors.page_markdown(page))

    def get_edited(self, page) -> bool:
        return page.markdown_edited is not None
