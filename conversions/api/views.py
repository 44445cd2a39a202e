"""Native API views: validate input, call one service or selector, serialize the answer."""

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from conversions import batches, selectors, services
from conversions.api import fast_fields
from conversions.api.parsers import JSONParser
from conversions.api.serializers import (
    LISTED_CONVERSION_COLUMNS,
    LISTED_DOCUMENT_COLUMNS,
    BatchCreateSerializer,
    BatchSerializer,
    ConversionCreateSerializer,
    ConversionListFilterSerializer,
    ConversionPrioritySerializer,
    ConversionSerializer,
    DocumentSerializer,
    DocumentUploadSerializer,
    MarkdownQuerySerializer,
    PageResultSerializer,
)
from conversions.api.throttles import LoginThrottle, SubmissionThrottle
from conversions.exceptions import InvalidRequest, ResultNotReady
from conversions.models import Conversion, Document
from conversions.queue_position import with_queue_positions
from conversions.retention import delete_conversion, delete_document, ensure_not_expired
from workers import formats
from workers.markdown_pictures import IMAGE_MODES


def acting_user(request):
    return services.acting_user(getattr(request, "user", None))


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string up to 255 printable ASCII characters; a retried request with the same key "
    "returns the conversion the first one created.",
)


# Served by conversions/waiting.py, in front of these views (README: Waiting for the result).
WAIT_PARAMETERS = [
    OpenApiParameter(
        "Prefer",
        str,
        OpenApiParameter.HEADER,
        required=False,
        description="`wait=N` (RFC 7240): answer once the conversion is final, waiting at most N seconds "
        "(SYNC_WAIT_MAX_SECONDS caps it); then `Preference-Applied: wait=N`.",
    ),
    OpenApiParameter("wait", int, required=False, description="The same as `Prefer: wait=N`."),
]


def idempotency_key_of(request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not all(" " <= character <= "~" for character in key):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return key


class DocumentListView(ListAPIView):
    serializer_class = DocumentSerializer
    parser_classes = [MultiPartParser]
    throttle_classes = [SubmissionThrottle]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no user, no query
            return Document.objects.none()
        return selectors.documents_for(acting_user(self.request))

    @extend_schema(request=DocumentUploadSerializer, responses={201: DocumentSerializer})
    def post(self, request):
        upload = DocumentUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        document = services.create_document(
            owner=acting_user(request), upload=upload.validated_data["file"], max_pages=settings.MAX_PAGES
        )
        return Response(DocumentSerializer(document).data, status=status.HTTP_201_CREATED)


class DocumentDetailView(APIView):
    @extend_schema(responses=DocumentSerializer)
    def get(self, request, document_id):
        document = selectors.document_for(acting_user(request), document_id)
        return Response(DocumentSerializer(document).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, document_id):
        """Delete the document, every conversion of it (unfinished ones cancelled first)
        and their files."""
        delete_document(document=selectors.document_for(acting_user(request), document_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversionListView(ListAPIView):
    serializer_class = ConversionSerializer
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_classes = [SubmissionThrottle]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator: no user, no query
            return Conversion.objects.none()
        query = ConversionListFilterSerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        return selectors.conversion_rows_for(
            acting_user(self.request),
            status=query.validated_data.get("status"),
            columns=LISTED_CONVERSION_COLUMNS,
            document_columns=LISTED_DOCUMENT_COLUMNS,
        )

    def paginate_queryset(self, queryset):
        # The page's rows with the attributes the serializer reads (no model instances), and
        # their queue positions in a fixed number of queries, not one per row.
        page = fast_fields.rows(super().paginate_queryset(queryset), {"document": LISTED_DOCUMENT_COLUMNS})
        return with_queue_positions(page)

    @extend_schema(
        request=ConversionCreateSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER, *WAIT_PARAMETERS],
        responses={201: ConversionSerializer, 200: ConversionSerializer, 202: ConversionSerializer},
    )
    def post(self, request):
        """Create a conversion from an upload (``file``), a URL (``source_url``, downloaded
        now: a failed download is a 4xx) or an uploaded ``document``; ``pages`` selects pages.

        With an ``Idempotency-Key`` header, repeating the request returns the conversion
        the first one created (200, ``Idempotent-Replayed: true``) instead of a new one.
        """
        form = ConversionCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        conversion, created = services.submit_conversion(
            owner=acting_user(request),
            upload=data.get("file"),
            document_id=data.get("document"),
            source_url=data.get("source_url"),
            pages=data["pages"],
            priority=data["priority"],
            engine=data["engine"],
            prompt_mode=data["prompt_mode"],
            idempotency_key=idempotency_key_of(request),
            max_queued=settings.MAX_QUEUED_PER_USER,
            on_page_error=data["on_page_error"],
            callback_url=data["callback_url"],
        )
        body = ConversionSerializer(conversion).data
        headers = {"Location": body["links"]["detail"]}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK, headers=headers)


class BatchListView(APIView):
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    throttle_classes = [SubmissionThrottle]  # a batch is one submission, however many files it holds

    @extend_schema(request=BatchCreateSerializer, responses={201: BatchSerializer})
    def post(self, request):
        """Create one conversion per ``file`` part and per ``source_url``, all or none; the
        options (``engine``, ``prompt_mode``, ``priority``, ``pages``) apply to each."""
        form = BatchCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        batch = batches.submit_batch(
            owner=acting_user(request),
            uploads=data["file"],
            source_urls=data["source_url"],
            options=batches.BatchOptions(
                engine=data["engine"],
                prompt_mode=data["prompt_mode"],
                priority=data["priority"],
                pages=data["pages"],
                on_page_error=data["on_page_error"],
                callback_url=data["callback_url"],
            ),
            max_queued=settings.MAX_QUEUED_PER_USER,
        )
        body = BatchSerializer(batch).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["links"]["detail"]})


class BatchDetailView(APIView):
    @extend_schema(responses=BatchSerializer)
    def get(self, request, batch_id):
        """Counts per status and every conversion of the batch."""
        return Response(BatchSerializer(selectors.batch_for(acting_user(request), batch_id)).data)


class ConversionDetailView(APIView):
    @extend_schema(parameters=WAIT_PARAMETERS, responses=ConversionSerializer)
    def get(self, request, conversion_id):
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        return Response(ConversionSerializer(conversion).data)

    @extend_schema(request=ConversionPrioritySerializer, responses=ConversionSerializer)
    def patch(self, request, conversion_id):
        """Change the priority of a job that has not finished."""
        form = ConversionPrioritySerializer(data=request.data)
        form.is_valid(raise_exception=True)
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        conversion = services.set_priority(conversion=conversion, priority=form.validated_data["priority"])
        return Response(ConversionSerializer(conversion).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, conversion_id):
        """Delete the conversion, its pages and its files (a queued or running one is
        cancelled first); its document stays."""
        delete_conversion(conversion=selectors.conversion_for(acting_user(request), conversion_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversionRetryView(APIView):
    @extend_schema(request=None, responses=ConversionSerializer)
    def post(self, request, conversion_id):
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        conversion = services.retry_conversion(conversion=conversion, max_queued=settings.MAX_QUEUED_PER_USER)
        return Response(ConversionSerializer(conversion).data)


class ConversionCancelView(APIView):
    @extend_schema(request=None, responses=ConversionSerializer)
    def post(self, request, conversion_id):
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        conversion = services.cancel_conversion(conversion=conversion)
        return Response(ConversionSerializer(conversion).data)


IMAGES_PARAMETER = OpenApiParameter(
    "images",
    str,
    enum=IMAGE_MODES,
    required=False,
    description="Pictures as absolute `links` to .../files/<name> (default), `embedded` data URLs, or `none`.",
)


def markdown_query(request) -> MarkdownQuerySerializer:
    # A plain dict: from a QueryDict, DRF reads a missing boolean as false, not its default.
    query = MarkdownQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query


def markdown_server(request, conversion: Conversion, mode: str):
    """``serve(text)``: a page's or document's Markdown with its pictures as ``mode`` asks."""

    def link(name: str) -> str:
        return request.build_absolute_uri(reverse("api:conversion-file", args=[conversion.pk, name]))

    return lambda text: selectors.served_markdown(text, conversion=conversion, mode=mode, link=link)


class ConversionMarkdownView(APIView):
    """The whole document's Markdown (users' edits included); ``?headers_footers=false``
    drops page headers/footers, ``?images=`` says how pictures appear."""

    @extend_schema(
        parameters=[IMAGES_PARAMETER, OpenApiParameter("headers_footers", bool, required=False)],
        responses={(200, "text/markdown"): str},
    )
    def get(self, request, conversion_id):
        query = markdown_query(request)
        conversion = completed_conversion(request, conversion_id)
        text = selectors.document_markdown(conversion, headers_footers=query.validated_data["headers_footers"])
        serve = markdown_server(request, conversion, query.validated_data["images"])
        return HttpResponse(serve(text) + "\n", content_type="text/markdown; charset=utf-8")


def completed_conversion(request, conversion_id) -> Conversion:
    """The caller's conversion with a result to serve: ResultNotReady (409) before it
    completes, Gone (410) once RESULT_TTL_HOURS removed it."""
    conversion = selectors.conversion_for(acting_user(request), conversion_id)
    ensure_not_expired(conversion)
    if conversion.status != Conversion.Status.COMPLETED:
        raise ResultNotReady(f"Conversion {conversion.pk} is {conversion.status}; its result is not available.")
    return conversion


# Rendered pages may hold text from any PDF: no scripts, nothing loaded but pictures.
HTML_POLICY = "default-src 'none'; img-src 'self' http: https: data:; style-src 'unsafe-inline'"


class ConversionHtmlView(APIView):
    """The whole document rendered to HTML and sanitised (workers/formats.py); the
    same ``?images=`` and ``?headers_footers=`` as .../markdown."""

    @extend_schema(
        parameters=[IMAGES_PARAMETER, OpenApiParameter("headers_footers", bool, required=False)],
        responses={(200, "text/html"): str},
    )
    def get(self, request, conversion_id):
        query = markdown_query(request)
        conversion = completed_conversion(request, conversion_id)
        text = selectors.document_markdown(conversion, headers_footers=query.validated_data["headers_footers"])
        serve = markdown_server(request, conversion, query.validated_data["images"])
        page = formats.html_document(serve(text), title=conversion.document.filename)
        response = HttpResponse(page, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = HTML_POLICY
        response["X-Content-Type-Options"] = "nosniff"
        return response


class ConversionTextView(APIView):
    """The whole document as plain text in reading order, without markup or pictures;
    ``?headers_footers=false`` drops page headers/footers."""

    @extend_schema(
        parameters=[OpenApiParameter("headers_footers", bool, required=False)], responses={(200, "text/plain"): str}
    )
    def get(self, request, conversion_id):
        query = markdown_query(request)
        conversion = completed_conversion(request, conversion_id)
        text = selectors.document_markdown(conversion, headers_footers=query.validated_data["headers_footers"])
        return HttpResponse(formats.plain_text(text), content_type="text/plain; charset=utf-8")


class ConversionPagesView(APIView):
    """Per-page layout cells and Markdown; while running, the pages finished so far
    (their pictures stay bare file names until the outputs are published)."""

    @extend_schema(parameters=[IMAGES_PARAMETER], responses=PageResultSerializer(many=True))
    def get(self, request, conversion_id):
        query = markdown_query(request)
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        ensure_not_expired(conversion)
        serve = markdown_server(request, conversion, query.validated_data["images"])
        pages = PageResultSerializer(selectors.page_results(conversion), many=True, context={"serve": serve}).data
        return Response(
            {
                "conversion_id": str(conversion.pk),
                "status": conversion.status,
                "complete": conversion.status == Conversion.Status.COMPLETED,
                "pages_total": conversion.pages_total,
                "pages": pages,
            }
        )


class AuthTokenView(APIView):
    """``POST`` username and password for the user's API token (the same one until it is
    revoked); ``DELETE`` revokes the caller's own token."""

    throttle_classes = [LoginThrottle]

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(
        request=AuthTokenSerializer, responses=inline_serializer("ApiToken", {"token": serializers.CharField()})
    )
    def post(self, request):
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        credentials.is_valid(raise_exception=True)
        return Response({"token": services.issue_api_token(user=credentials.validated_data["user"])})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        services.revoke_api_token(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
