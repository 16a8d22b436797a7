"""Pagination: page numbers for jobs and schedules, a cursor for the (large) process table.

A bad page or cursor is invalid input (400 in the usual error shape), not a missing resource.
"""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from rest_framework import pagination
from rest_framework.exceptions import NotFound, ValidationError

MAX_PAGE_SIZE = 500


def _positive_int(request, name: str, maximum: int) -> int | None:
    """The query parameter as an int in 1..maximum; absent is None; anything else is a 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ValidationError({name: [f"Give a whole number from 1 to {maximum}."]})
    return int(raw)


def _page_size_parameter(name: str) -> dict:
    return {
        "name": name, "required": False, "in": "query",
        "description": f"Results per page (default 50, at most {MAX_PAGE_SIZE}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    }


class PagePagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request):
        return _positive_int(request, self.page_size_query_param, self.max_page_size) or self.page_size

    def paginate_queryset(self, queryset, request, view=None):
        _positive_int(request, self.page_query_param, 2**31)
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({self.page_query_param: [str(exc.detail)]}) from None

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param, "required": False, "in": "query",
                "description": "Page number, from 1.", "schema": {"type": "integer", "minimum": 1},
            },
            _page_size_parameter(self.page_size_query_param),
        ]


class ProcessCursorPagination(pagination.CursorPagination):
    """Newest first, stable while new runs arrive, no COUNT(*) over millions of rows.

    In id order by default; a view may ask for another order per request (`get_cursor_ordering`,
    e.g. `(created_at, id)` newest first when the list is filtered by creation time, so the
    filter and the order read one index instead of the primary key filtered row by row).
    """

    ordering = ("-id",)
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request):
        return _positive_int(request, self.page_size_query_param, self.max_page_size) or self.page_size

    def get_ordering(self, request, queryset, view):
        choose = getattr(view, "get_cursor_ordering", None)
        return tuple(choose()) if choose else self.ordering

    def get_schema_operation_parameters(self, view):
        cursor, _ = super().get_schema_operation_parameters(view)
        return [cursor, _page_size_parameter(self.page_size_query_param)]

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [str(exc.detail)]}) from None
        # The position is compared with the ordering's first column: a crafted value of the wrong
        # kind must not reach SQL.
        if cursor is not None and cursor.position is not None and not self._valid_position(cursor.position):
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    def _valid_position(self, position: str) -> bool:
        if self.ordering[0].lstrip("-") == "created_at":
            try:
                return parse_datetime(position) is not None
            except ValueError:
                return False
        try:
            return 0 <= int(position) < 2**63
        except ValueError:
            return False
