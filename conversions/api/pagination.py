"""Page-number pagination (DRF's, same links and body) whose first page costs no COUNT(*)
when it is not full: most users' lists fit on one page, and the count was one of a list
request's four statements (bench/ ``lists``)."""

from django.core.paginator import Paginator
from rest_framework import pagination


class FirstPageCountingPaginator(Paginator):
    """Reads the first page's rows with one row more than a page: fewer than a full page
    and that is the total, exact, without a COUNT(*); otherwise counted as usual. Other
    pages, and paginators with orphans, are Django's."""

    def page(self, number):
        if self.orphans or "count" in self.__dict__ or number not in (1, "1"):
            return super().page(number)
        rows = list(self.object_list[: self.per_page + 1])
        if len(rows) <= self.per_page:
            self.count = len(rows)  # a cached_property: set, it is never queried
        return self._get_page(rows[: self.per_page], 1, self)


class PageNumberPagination(pagination.PageNumberPagination):
    django_paginator_class = FirstPageCountingPaginator
