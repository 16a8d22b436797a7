"""Content negotiation for endpoints that answer in a fixed format (the log is text/plain).

Such a view builds its success response itself; errors are rendered as JSON in the usual shape
whatever the client's Accept header says, instead of a 406 before the view even runs.
"""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation


class FixedFormatNegotiation(BaseContentNegotiation):
    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
