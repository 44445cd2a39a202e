"""Picture references in a page's Markdown, rewritten for where it is served (no Django here).

Stored Markdown, the output folder and the zip name each picture crop by its bare file
name (``![](<stem>_page_<n>_picture_<i>.jpg)``), so the folder works offline. Served
over HTTP a bare name resolves against the page's own URL and fails: the original
app's routes embed the crops as ``data:image/jpeg;base64,...`` URLs, as the original
did; the native API links them by absolute URL, embeds them or leaves them out.
"""

import base64
import binascii
import re
from collections.abc import Callable

# A bare output file name (no folder, no scheme): what the pipeline writes, see
# workers.outputs.picture_name. Anything else (http, data, ../) is left as it is.
LOCAL_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(([A-Za-z0-9_-][A-Za-z0-9._-]*\.jpg)\)")
EMBEDDED_JPEG = re.compile(r"!\[([^\]\n]*)\]\(data:image/jpeg;base64,([A-Za-z0-9+/]+={0,2})\)")
IMAGE_MODES = ("links", "embedded", "none")


def relink(markdown: str, target: Callable[[str], str | None]) -> str:
    """Each local image's file name replaced by ``target(name)``; an image whose
    ``target`` is None (not a file of this conversion) is left as it is."""

    def replace(match: re.Match) -> str:
        new_target = target(match[2])
        return match[0] if new_target is None else f"![{match[1]}]({new_target})"

    return LOCAL_IMAGE.sub(replace, markdown)


def data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def without_images(markdown: str, is_local: Callable[[str], bool]) -> str:
    """The Markdown without its local images: a paragraph that is only an image goes
    whole (no blank gap is left), an image inside text goes alone."""
    paragraphs = markdown.split("\n\n")
    kept = [paragraph for paragraph in paragraphs if not only_a_local_image(paragraph, is_local)]
    return LOCAL_IMAGE.sub(lambda match: "" if is_local(match[2]) else match[0], "\n\n".join(kept))


def only_a_local_image(paragraph: str, is_local: Callable[[str], bool]) -> bool:
    match = LOCAL_IMAGE.fullmatch(paragraph.strip())
    return match is not None and is_local(match[2])


def unembed(markdown: str, name_of: Callable[[bytes], str | None]) -> str:
    """Embedded JPEGs that are one of the conversion's own crops (``name_of`` their bytes)
    named by file again, so a client saving what it was served stores what the pipeline
    wrote; any other embedded image (pasted by the user) is kept as it is."""

    def replace(match: re.Match) -> str:
        try:
            jpeg = base64.b64decode(match[2], validate=True)
        except (binascii.Error, ValueError):
            return match[0]
        name = name_of(jpeg)
        return match[0] if name is None else f"![{match[1]}]({name})"

    return EMBEDDED_JPEG.sub(replace, markdown)
