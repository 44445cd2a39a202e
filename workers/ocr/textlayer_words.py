"""Hyphens at line ends, decided with the words of the whole document. No Django here.

The rule: a line that ends in a hyphen right after a letter, followed by a line that
starts with a lowercase letter, is one word split by hyphenation ("infor-" + "mation" ->
"information"), unless the document writes that word with the hyphen inside a line
("price-determining") more often than without it ("pricedetermining"); then it is a
real hyphen and stays, with no space ("price-" + "determining" -> "price-determining").
A line that goes on with a capital or a digit ("Jean-" + "Paul", "1990-" + "2000")
keeps its hyphen too. A soft hyphen (U+00AD) always joins.
"""

import re
from collections import Counter

import pymupdf

from workers.pdf import MAX_PAGE_CONTENT_MB, MUPDF_ERRORS, InvalidPdf, PageContentBudget

HYPHENS = ("-", "\u2010")
SOFT_HYPHEN = "\u00ad"
WORD = re.compile(r"\w+(?:[-\u2010]\w+)*")
WORD_SPAN = 100  # characters: longer than any word
HEAD = re.compile(r"(\w+)[-\u2010\u00ad]$")
TAIL = re.compile(r"^(\w+)")
# The evidence is read from at most this many pages: enough for any book-length
# document, and a bound on the one-off cost (some 5 ms a page) for a huge one.
MAX_EVIDENCE_PAGES = 2000


class DocumentWords:
    """The words of a document as written within its lines, counted once, when first asked."""

    def __init__(self, document: pymupdf.Document):
        self.document = document
        self._counts: Counter[str] | None = None

    def count(self, word: str) -> int:
        if self._counts is None:
            self._counts = count_words(self.document)
        return self._counts[word.lower()]

    def join(self, text: str, line: str) -> str:
        """``text`` followed by the next ``line`` of the same paragraph, undoing hyphenation by the rule above."""
        # Only the end of a long paragraph is searched: the search is linear in the text.
        head = HEAD.search(text[-WORD_SPAN:]) if text[-1:] in (*HYPHENS, SOFT_HYPHEN) else None
        if head is None or not line[:1].isalnum():
            return f"{text} {line}"
        if text.endswith(SOFT_HYPHEN):
            return text[:-1] + line
        tail = TAIL.match(line)
        assert tail is not None  # the line starts with a letter or digit (above)
        if line[:1].islower() and not self.hyphen_is_real(head.group(1), tail.group(1)):
            return text[:-1] + line
        return text + line

    def hyphen_is_real(self, head: str, tail: str) -> bool:
        return self.count(f"{head}-{tail}") + self.count(f"{head}\u2010{tail}") > self.count(head + tail)


def count_words(document: pymupdf.Document) -> Counter[str]:
    """Lowercased words of every page within lines: a word broken at a line end is not one of them."""
    counts: Counter[str] = Counter()
    budget = PageContentBudget(document, limit_bytes=MAX_PAGE_CONTENT_MB * 1024 * 1024)
    for number in range(min(document.page_count, MAX_EVIDENCE_PAGES)):
        try:
            budget.check(number)  # a decompression bomb is the page's own job to refuse, not ours to read
            words = document[number].get_text("words")
        except (InvalidPdf, *MUPDF_ERRORS):
            continue
        for word in words:
            counts.update(found.lower() for found in WORD.findall(word[4]))
    return counts
