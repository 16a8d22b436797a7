"""Pagination: page numbers for jobs and schedules, a cursor for the (large) process table.

A bad page or cursor is invalid input (400 in the usual error shape), not a missing resource.
"""

from __future__ import annotations

from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

MAX_PAGE_SIZE = 500


class PagePagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({self.page_query_param: [str(exc.detail)]}) from None


class ProcessCursorPagination(pagination.CursorPagination):
    """Newest first, stable while new runs arrive, no COUNT(*) over millions of rows."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [str(exc.detail)]}) from None
        # The position is compared with the id column: a crafted non-number must not reach SQL.
        if cursor is not None and cursor.position is not None:
            try:
                position = int(cursor.position)
            except ValueError:
                position = -1
            if not 0 <= position < 2**63:
                raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor
