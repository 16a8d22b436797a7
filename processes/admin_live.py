"""The process pages' live endpoints: the small JSON the pages poll, the log followed by offset,
and the whole log opened or downloaded as a stream.

Thin admin views: they check the viewer may see the run, call a selector and render.
"""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404

from processes.live import process_live_state, processes_live_state
from processes.models import ACTIVE_STATUSES, Process
from processes.selectors import process_log_read, process_log_stream

# One follow read returns at most this much; the page asks again at once while more is waiting.
FOLLOW_LIMIT = 64 * 1024
_IDS = re.compile(r"^\d{1,12}(,\d{1,12}){0,199}$")


def _visible_process(model_admin, request, process_id: int) -> Process:
    process = get_object_or_404(Process, pk=process_id)
    if not model_admin.has_view_permission(request, process):
        raise PermissionDenied
    return process


def process_live_view(model_admin, request, process_id: int):
    _visible_process(model_admin, request, process_id)
    state = process_live_state(process_id=process_id)
    if state is None:
        raise Http404
    return JsonResponse(state)


def processes_live_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    ids = request.GET.get("ids", "")
    if not _IDS.match(ids):
        return HttpResponseBadRequest("ids: give up to 200 process ids separated by commas, e.g. ?ids=12,13.")
    return JsonResponse(processes_live_state(process_ids=[int(pk) for pk in ids.split(",")]))


def process_log_follow_view(model_admin, request, process_id: int):
    """`?offset=N`: the log from byte N on, the offset to ask for next, and whether the run is still active."""
    process = _visible_process(model_admin, request, process_id)
    try:
        offset = int(request.GET.get("offset", "0"))
    except ValueError:
        return HttpResponseBadRequest("offset: give a byte offset, e.g. ?offset=0.")
    try:
        chunk = process_log_read(process=process, offset=offset, limit=FOLLOW_LIMIT)
    except Exception as exc:  # the log store (CloudWatch) may be unreachable; the page keeps trying
        return JsonResponse({"text": "", "next_offset": offset, "active": True, "error": str(exc)})
    return JsonResponse({
        "text": chunk.text,
        "next_offset": chunk.next_offset,
        "more": len(chunk.text.encode("utf-8")) >= FOLLOW_LIMIT,
        "active": process.status in ACTIVE_STATUSES,
    })


def process_log_download_view(model_admin, request, process_id: int):
    """The whole log, streamed: `?download=1` saves it as a file, otherwise the browser shows it."""
    process = _visible_process(model_admin, request, process_id)
    response = StreamingHttpResponse(process_log_stream(process=process), content_type="text/plain; charset=utf-8")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="process-{process.pk}.log"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
