"""Serving a completed conversion's files from storage (conversions/storage.py): one
file, a page image, or all of them in a zip. Streamed, never read whole into memory;
with OBJECT_STORAGE_PRESIGNED_DOWNLOADS a single file is a redirect to the object store."""

import mimetypes
import shutil
import tempfile
import zipfile

from django.conf import settings
from django.http import FileResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from conversions import selectors, storage
from conversions.api.views import acting_user
from workers import formats
from workers.outputs import safe_stem


class ConversionFileView(APIView):
    """One output file of a completed conversion (page images, pictures, JSON, Markdown)."""

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, conversion_id, name):
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        return file_response(selectors.output_file(conversion, name))


class ConversionPageImageView(APIView):
    @extend_schema(responses={(200, "image/jpeg"): bytes})
    def get(self, request, conversion_id, page_no):
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        return file_response(selectors.page_image(conversion, page_no), inline=True)


class ConversionZipView(APIView):
    """All output files of a completed conversion in one ZIP."""

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request, conversion_id):
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
        files = selectors.output_files(conversion)
        stem = safe_stem(conversion.document.filename)
        # Made from the pages now, so a user's edits are in them; pictures by bare file
        # name, which the zip holds beside them.
        markdown = selectors.document_markdown(conversion, headers_footers=True)
        # In memory up to 8 MiB, then on disk: outputs can be large. Each file is
        # streamed from storage into it.
        archive = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024, dir=settings.FILE_UPLOAD_TEMP_DIR)
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for stored in files:
                stream, _ = storage.open_stream(stored.key)
                with stream, bundle.open(stored.name, "w") as entry:
                    shutil.copyfileobj(stream, entry, storage.CHUNK_BYTES)
            bundle.writestr(f"{stem}.html", formats.html_document(markdown, title=conversion.document.filename))
            bundle.writestr(f"{stem}.txt", formats.plain_text(markdown))
        archive.seek(0)
        filename = f"{stem}.zip"
        return FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")


def file_response(stored: storage.StoredFile, *, inline: bool = False) -> HttpResponseBase:
    """A stored file streamed in chunks from storage (never read whole), or with
    OBJECT_STORAGE_PRESIGNED_DOWNLOADS a 302 to a presigned URL of the object store."""
    presigned = storage.presigned_url(stored.key, filename=stored.name, inline=inline)
    if presigned is not None:
        return HttpResponseRedirect(presigned)
    content_type = mimetypes.guess_type(stored.name)[0] or "application/octet-stream"
    if stored.suffix == ".md":
        content_type = "text/markdown; charset=utf-8"
    stream, size = storage.open_stream(stored.key)
    response = FileResponse(stream, as_attachment=not inline, filename=stored.name, content_type=content_type)
    response["Content-Length"] = str(size)
    response["X-Content-Type-Options"] = "nosniff"
    return response
