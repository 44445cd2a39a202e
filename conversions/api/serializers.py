"""Input and output shapes of the native API. No business rules here."""

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from conversions.models import Conversion, Document, PageResult
from workers.ocr import ENGINES
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "filename", "size", "sha256", "page_count", "content_type", "created_at"]


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class DocumentSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = ["id", "filename", "page_count"]


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


class PageResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = PageResult
        fields = ["page_no", "status", "engine", "engine_reason", "duration_ms", "error", "cells", "markdown",
                  "markdown_nohf"]
