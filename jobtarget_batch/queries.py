"""Query pieces that keep counts over big tables bounded."""

from __future__ import annotations

from django.db import models


class CappedCount(models.Subquery):
    """`(SELECT COUNT(*) FROM (<queryset> LIMIT cap + 1))`: the count, or cap + 1 when there are more.

    Per-row counts of a history (runs per schedule) read at most cap + 1 index entries per row
    instead of grouping every run; show a value above `cap` as "more than cap".
    """

    template = "(SELECT COUNT(*) FROM (%(subquery)s) capped_rows)"
    output_field = models.IntegerField()

    def __init__(self, queryset: models.QuerySet, *, cap: int, **extra):
        self.cap = cap
        super().__init__(queryset.order_by().values("pk")[: cap + 1], **extra)


def capped_label(count: int, cap: int) -> str:
    """A count from CappedCount for people: 1,234 or "more than 10,000"."""
    return f"more than {cap:,}" if count > cap else f"{count:,}"
