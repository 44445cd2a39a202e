"""A conversion's Markdown as HTML and as plain text (no Django here).

HTML: the Markdown rendered by Python-Markdown (tables, fenced code; the model's tables
are HTML already) and sanitised with nh3, as the conversion page does
(conversions/rendering.py): text from a PDF that reads ``<script>`` shows as text, never
runs. Pictures keep whatever target the caller gave them (an absolute URL, a
``data:image/jpeg;base64,`` URL, or a bare file name for the zip); no other ``data:``
URL survives.

Text: the same rendering with its markup taken away, in reading order (the order of the
page's cells, which is the Markdown's): one block per line, table cells separated by
tabs, formulas as their LaTeX without ``$$``, pictures and HTML comments left out.
"""

import html
import re
from html.parser import HTMLParser

import markdown
import nh3

ALLOWED_TAGS = nh3.ALLOWED_TAGS | {
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "img",
    "pre",
    "code",
    "hr",
    "sup",
    "sub",
    "blockquote",
}
ALLOWED_ATTRIBUTES = {
    **nh3.ALLOWED_ATTRIBUTES,
    "img": {"src", "alt"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}
EMBEDDED_JPEG = re.compile(r"data:image/jpeg;base64,[A-Za-z0-9+/]+={0,2}")
STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.5}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.2em .4em}img{max-width:100%}"
)


def rendered_html(text: str) -> str:
    """The sanitised HTML fragment of Markdown ``text``."""
    fragment = markdown.markdown(text, extensions=["tables", "fenced_code"])
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "data"},
        attribute_filter=keep_attribute,
    )


def keep_attribute(element: str, attribute: str, value: str) -> str | None:
    """nh3's attribute filter: a ``data:`` URL only as an embedded JPEG picture."""
    if value.strip().lower().startswith("data:"):
        return value if element == "img" and attribute == "src" and EMBEDDED_JPEG.fullmatch(value.strip()) else None
    return value


def html_document(text: str, *, title: str) -> str:
    """A whole HTML page (UTF-8) of Markdown ``text``, titled ``title``."""
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{rendered_html(text)}\n</body>\n</html>\n"
    )


BLOCKS = {
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "tr",
    "table",
    "thead",
    "tbody",
    "blockquote",
    "pre",
    "hr",
    "br",
    "dl",
    "dt",
    "dd",
    "caption",
}
CELLS = {"td", "th"}
SKIPPED = {"script", "style", "img"}


class TextOfHtml(HTMLParser):
    """Collects the text of rendered HTML: blocks on their own lines, cells by tabs."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.cell_in_row = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skipping += 1
        elif tag in BLOCKS:
            self.parts.append("\n")
            self.cell_in_row = 0
        elif tag in CELLS:
            if self.cell_in_row:
                self.parts.append("\t")
            self.cell_in_row += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.skipping = max(0, self.skipping - 1)
        elif tag in BLOCKS and tag != "tr":  # the next row's start breaks the line
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)

    def text(self) -> str:
        lines = [re.sub(r"[ \t]*\n[ \t]*", "\n", line) for line in "".join(self.parts).split("\n")]
        joined = "\n".join(line.rstrip() for line in lines)
        return re.sub(r"\n{3,}", "\n\n", joined).strip() + "\n"


def plain_text(text: str) -> str:
    """Markdown ``text`` as plain text in reading order (see the module docstring)."""
    parser = TextOfHtml()
    parser.feed(markdown.markdown(text, extensions=["tables", "fenced_code"]))
    parser.close()
    return DISPLAY_MATH.sub(lambda match: match[1], parser.text())


# A Formula cell is ``$$<LaTeX>$$`` (workers/ocr/layout.py): the LaTeX is its text.
DISPLAY_MATH = re.compile(r"\$\$\s*(.*?)\s*\$\$", re.DOTALL)
