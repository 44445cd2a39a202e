"""Markdown from the model, rendered to HTML that is safe to show in a browser."""

import re

import markdown
import nh3

# One sanitiser policy for every HTML the service serves (the output formats' own).
from workers.formats import ALLOWED_ATTRIBUTES, ALLOWED_TAGS

LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\(([A-Za-z0-9._-]+\.jpg)\)")


def render_markdown(text: str, *, file_url) -> str:
    """HTML of a page's Markdown; links to output images go through ``file_url(name)``.

    Sanitised with nh3: a PDF whose text carries <script> shows it as text, never runs it.
    """
    linked = LOCAL_IMAGE.sub(lambda match: f"![{match[1]}]({file_url(match[2])})", text)
    html = markdown.markdown(linked, extensions=["tables", "fenced_code"])
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https"})
