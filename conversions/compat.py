"""The original app's routes (reference/original-api.md): same paths, fields, status
strings and ``{"detail": ...}`` errors, as thin views over the same services and
selectors as the native API."""

import re

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions import events, selectors, services, storage
from conversions.api.parsers import JSONParser
from conversions.api.results import file_response
from conversions.api.throttles import SubmissionThrottle
from conversions.api.views import acting_user
from conversions.exceptions import InvalidParameter, InvalidRequest, NotFound
from conversions.models import Conversion
from conversions.retention import ensure_not_expired
from workers import outputs
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES

UNSAFE_NAME = re.compile(r"\.\.|[/\\\x00-\x1f\x7f]")


def checked_filename(name: str) -> str:
    """A client's file name, refused when it could be read as a path."""
    if not name or UNSAFE_NAME.search(name):
        raise InvalidRequest("Invalid filename")
    return name


def upload_record(document) -> dict:
    return {
        "filename": document.filename,
        "file_path": storage.shown_path(document.stored_path),
        "file_size": document.size,
        "upload_time": document.created_at.isoformat(),
    }


@extend_schema(responses=OpenApiTypes.OBJECT)  # the original app's shapes: reference/original-api.md
class CompatView(APIView):
    """The original routes need a token or session like the native API, unless
    ALLOW_ANONYMOUS."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def perform_authentication(self, request):
        """On a single-user install a token we do not know is ignored, not a 401: the
        original frontend sends its own login token (reference/original-api.md)."""
        try:
            super().perform_authentication(request)
        except AuthenticationFailed:
            if not settings.ALLOW_ANONYMOUS:
                raise


class ConfigView(CompatView):
    """Public: the frontend reads it before anyone signs in."""

    permission_classes = [AllowAny]

    def get(self, request):
        return Response({**settings.FRONTEND_CONFIG, **settings.OCR_CONFIG})


class UploadView(CompatView):
    throttle_classes = [SubmissionThrottle]

    class UploadInput(serializers.Serializer):
        file = serializers.FileField(allow_empty_file=True)

    @extend_schema(request=UploadInput)
    def post(self, request):
        form = self.UploadInput(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        checked_filename(upload.name)
        document = services.create_document(owner=acting_user(request), upload=upload, max_pages=settings.MAX_PAGES)
        return Response({"status": "success", **upload_record(document)})


class DocumentsView(CompatView):
    def get(self, request):
        user = acting_user(request)
        documents = selectors.latest_documents_by_name(user)
        output_dirs = selectors.latest_completed_output_dirs(user, stems={document.stem for document in documents})
        records = [document_record(document, output_dirs.get(document.stem)) for document in documents]
        return Response({"status": "success", "total": len(records), "documents": records})


def document_record(document, output_dir: str | None) -> dict:
    """The original's file record; ``output_dir`` of its latest completed conversion."""
    markdown = storage.shown_path(storage.join(output_dir, f"{document.stem}_nohf.md")) if output_dir else None
    return {
        **upload_record(document),
        "markdown_exists": markdown is not None,
        "markdown_path": markdown,
        "is_multipage": (document.page_count or 0) > 1,
    }


class DocumentDeleteView(CompatView):
    def delete(self, request, filename):
        deleted = services.delete_documents_named(user=acting_user(request), filename=checked_filename(filename))
        return Response(
            {"status": "success", "deleted_files": deleted, "message": f"Deleted {len(deleted)} file(s)/folder(s)"}
        )


class ConvertView(CompatView):
    throttle_classes = [SubmissionThrottle]

    class ConvertInput(serializers.Serializer):
        filename = serializers.CharField()
        prompt_mode = serializers.ChoiceField(choices=PROMPT_MODES, default=DEFAULT_PROMPT_MODE)
        priority = serializers.IntegerField(default=0, min_value=-1000, max_value=1000)

    @extend_schema(request=ConvertInput)
    def post(self, request):
        name = request.data.get("filename") if isinstance(request.data, dict) else None
        if isinstance(name, str):  # before field validation, so every unsafe name reads the same
            checked_filename(name)
        form = self.ConvertInput(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        user = acting_user(request)
        document = selectors.latest_document_named(user, data["filename"])
        conversion = services.create_conversion(
            document=document,
            owner=user,
            priority=data["priority"],
            engine=settings.OCR_ENGINE,
            prompt_mode=data["prompt_mode"],
            max_queued=settings.MAX_QUEUED_PER_USER,
        )
        counts = selectors.queue_counts()
        return Response(
            {
                "status": "accepted",
                "conversion_id": str(conversion.pk),
                "filename": document.filename,
                "message": "Conversion task started. Use WebSocket to track progress.",
                "queue_size": counts["queued"],
                "active_tasks": counts["running"],
            }
        )


class ConversionStatusView(CompatView):
    def get(self, request, conversion_id):
        return Response(events.original_status_record(selectors.conversion_for(acting_user(request), conversion_id)))


class WorkerPoolStatusView(CompatView):
    def get(self, request):
        counts = selectors.queue_counts()
        return Response(
            {
                "status": "ok",
                "queue_size": counts["queued"],
                "active_tasks": counts["running"],
                "num_workers": selectors.live_worker_count(),
            }
        )


def completed_for_stem(request, stem: str) -> Conversion:
    conversion = selectors.latest_completed_conversion(acting_user(request), stem=checked_filename(stem))
    if conversion is None:
        raise NotFound(f"No markdown files found for: {stem}")
    ensure_not_expired(conversion)  # 410 once RESULT_TTL_HOURS removed its files
    return conversion


def page_number(request) -> int | None:
    value = request.query_params.get("page_no")
    if value in (None, ""):
        return None
    if not (value.isascii() and value.isdigit()):
        raise InvalidParameter(f"page_no must be a whole number from 0, not {value!r}")
    return int(value)


class MarkdownFilesView(CompatView):
    """Only the per-page files, in page order: the original produced no whole-document
    file for a PDF or image, and its viewer saves the i-th listed entry to page i."""

    def get(self, request, stem):
        conversion = completed_for_stem(request, stem)
        files = [
            page_file(conversion.output_dir, f"{outputs.page_name(stem, page_no)}_nohf.md", page_no)
            for page_no in selectors.page_numbers(conversion)
        ]
        return Response({"status": "success", "filename": stem, "markdown_files": files, "total": len(files)})


def page_file(prefix: str, name: str, page_no: int) -> dict:
    return {
        "filename": name,
        "path": storage.shown_path(storage.join(prefix, name)),
        "page_no": page_no,
        "is_multipage": True,
    }


class MarkdownView(CompatView):
    """Pictures are served as data URLs, as the original served them (its frontend runs
    on another origin, where a bare file name resolves to nothing)."""

    class Edit(serializers.Serializer):
        content = serializers.CharField(allow_blank=True, trim_whitespace=False)

    def get(self, request, stem):
        conversion = completed_for_stem(request, stem)
        page_no = page_number(request)
        content = selectors.served_markdown(
            selectors.markdown_nohf(conversion, page_no=page_no), conversion=conversion, mode="embedded"
        )
        return Response({"status": "success", "filename": stem, "page_no": page_no, "content": content})

    @extend_schema(request=Edit)
    def put(self, request, stem):
        conversion = completed_for_stem(request, stem)
        page_no = page_number(request)
        form = self.Edit(data=request.data)
        form.is_valid(raise_exception=True)
        services.save_markdown_edit(conversion=conversion, page_no=page_no, content=form.validated_data["content"])
        return Response(
            {
                "status": "success",
                "filename": stem,
                "page_no": page_no,
                "message": "Markdown content updated successfully",
            }
        )


class ImageView(CompatView):
    def get(self, request, stem):
        conversion = completed_for_stem(request, stem)
        return file_response(selectors.page_image(conversion, page_number(request) or 0), inline=True)


class ConvertDocView(ConvertView):
    """The original's ``POST /convert-doc`` (form ``filename``) for Office and text files:
    the same answer and WebSocket as ``/convert``. Every upload goes through one pipeline
    (the worker converts Office/text to PDF with LibreOffice), so it queues the same job."""
