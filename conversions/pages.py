"""HTML pages (Django templates, no build step). Data comes from selectors; actions go
through the API from a little vanilla JavaScript."""

from functools import wraps

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse

from conversions import selectors
from conversions.api.views import acting_user
from conversions.exceptions import NotFound
from conversions.models import Conversion
from conversions.rendering import render_markdown
from conversions.views import root as root_json
from workers.inputs.sniff import FILE_PICKER_ACCEPT
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES


def wants_html(request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def signed_in(page):
    """Send a visitor to the login page, unless anonymous visitors are allowed."""

    @wraps(page)
    def guarded(request, *args, **kwargs):
        if settings.ALLOW_ANONYMOUS or request.user.is_authenticated:
            return page(request, *args, **kwargs)
        return redirect_to_login(request.get_full_path())

    return guarded


def index(request):
    """Browsers get the dashboard; API clients get the original app's JSON greeting."""
    if not wants_html(request):
        return root_json(request)
    return dashboard(request)


@signed_in
def dashboard(request):
    user = acting_user(request)
    conversions = Paginator(selectors.conversions_for(user), 50).get_page(request.GET.get("page"))
    documents = selectors.documents_for(user)[:50]
    return render(
        request,
        "conversions/index.html",
        {
            "conversions": conversions,
            "documents": documents,
            "prompt_modes": PROMPT_MODES,
            "default_prompt_mode": DEFAULT_PROMPT_MODE,
            "accepted_file_types": FILE_PICKER_ACCEPT,
        },
    )


@signed_in
def conversion_page(request, conversion_id):
    try:
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
    except NotFound as error:
        return render(request, "conversions/not_found.html", {"detail": error.detail}, status=404)
    return render(
        request,
        "conversions/conversion.html",
        {
            "conversion": conversion,
            "pages": results_context(conversion),
            "page_numbers": range(conversion.pages_total or 0),
            "done_pages": selectors.checkpointed_page_numbers(conversion),
        },
    )


@signed_in
def conversion_results(request, conversion_id):
    """The results fragment the conversion page loads when the job completes."""
    try:
        conversion = selectors.conversion_for(acting_user(request), conversion_id)
    except NotFound as error:
        return render(request, "conversions/not_found.html", {"detail": error.detail}, status=404)
    return render(
        request, "conversions/_results.html", {"conversion": conversion, "pages": results_context(conversion)}
    )


def results_context(conversion: Conversion) -> list[dict]:
    if conversion.status != Conversion.Status.COMPLETED:
        return []

    def file_url(name):
        return reverse("api:conversion-file", args=[conversion.pk, name])

    return [page_context(conversion, page, file_url) for page in selectors.page_results(conversion)]


def page_context(conversion: Conversion, page, file_url) -> dict:
    markdown = selectors.page_markdown(page, headers_footers=True)  # a user's edit included
    return {
        "page_no": page.page_no,
        "source_page": page.source_page or page.page_no + 1,  # the document's page, with a selection
        "image_url": reverse("api:conversion-page-image", args=[conversion.pk, page.page_no]),
        "markdown": markdown,
        "html": render_markdown(markdown, file_url=file_url),
        "engine": page.engine,
    }
