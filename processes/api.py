"""`/api/v1/processes/` (read, rerun, cancel, logs) and `/api/v1/runs/` (start many runs at once)."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.models import Job
from jobtarget_batch.api.idempotency import idempotent
from jobtarget_batch.api.pagination import ProcessCursorPagination
from jobtarget_batch.api.permissions import CanRunJobs, CanView, ModelPermissions
from jobtarget_batch.api.renderers import FixedFormatNegotiation
from jobtarget_batch.api.schema import error_response
from processes import selectors, services
from processes.models import Process, Trigger
from processes.serializers import (
    SUMMARY_COLUMNS,
    LogQuerySerializer,
    ProcessFilterSerializer,
    ProcessSerializer,
    ProcessSummarySerializer,
    RunsSerializer,
    process_summaries,
)

NEXT_OFFSET_HEADER = "X-Next-Offset"


@extend_schema_view(
    list=extend_schema(
        parameters=[ProcessFilterSerializer],
        description="Runs, newest first, without their tasks (read one run for those). Cursor pagination: "
        "follow `next` until it is null.",
    ),
)
class ProcessViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = Process.objects.all()
    # Any id text reaches the view, so a malformed one is a JSON 404 like an unknown one.
    lookup_value_regex = "[^/]+"
    serializer_class = ProcessSerializer
    permission_classes = [ModelPermissions]
    pagination_class = ProcessCursorPagination

    def list(self, request, *args, **kwargs):
        """Pages of plain rows (values()), serialized without model instances (process_summaries)."""
        rows = self.filter_queryset(self.get_queryset()).values(*SUMMARY_COLUMNS)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(process_summaries(page))

    def get_permissions(self):
        if self.action in ("rerun", "cancel"):
            return [CanView(), CanRunJobs()]
        return super().get_permissions()

    def get_serializer_class(self):
        return ProcessSummarySerializer if self.action == "list" else ProcessSerializer

    def get_queryset(self):
        queryset = Process.objects.select_related("job", "triggered_by")
        if self.action == "list":
            # The list shows neither; a run's snapshot and executor details can be kilobytes each.
            return self._filter(queryset.defer("snapshot", "executor_details"))
        if self.action == "retrieve":
            return queryset.prefetch_related("tasks")
        return queryset

    def get_cursor_ordering(self) -> tuple[str, ...]:
        """Filtered by creation time, the list is read in (created_at, id) order, newest first, on
        process_created_newest_idx; otherwise by id. Either way newest first."""
        params = self.request.query_params
        if "created_after" in params or "created_before" in params:
            return ("-created_at", "-id")
        return ("-id",)

    def _filter(self, queryset):
        # A plain dict, so an empty value is invalid rather than "not given".
        query = ProcessFilterSerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        if "job" in filters:
            queryset = queryset.filter(job_id=filters["job"])
        if "status" in filters:
            queryset = queryset.filter(status=filters["status"])
        if "trigger" in filters:
            queryset = queryset.filter(trigger=filters["trigger"])
        if "created_after" in filters:
            queryset = queryset.filter(created_at__gte=filters["created_after"])
        if "created_before" in filters:
            queryset = queryset.filter(created_at__lt=filters["created_before"])
        return queryset

    @extend_schema(
        request=None, responses={202: ProcessSerializer, 409: error_response(409)},
        summary="Run a failed or cancelled process again",
        description="Starts a new run with the same parameters, linked by `rerun_of`. 409 unless the process "
        "failed or was cancelled, or when the job is disabled.",
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def rerun(self, request, pk=None):
        process = services.process_rerun(process=self.get_object(), user=request.user)
        return Response(ProcessSerializer(process).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None, responses={202: ProcessSerializer, 409: error_response(409)},
        summary="Cancel a process",
        description="A run no executor has yet is cancelled at once; a running one is asked to stop "
        "(its status changes when it has). 409 when the process already finished.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        process = services.process_cancel(process=self.get_object(), user=request.user)
        return Response(ProcessSerializer(process).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[
            LogQuerySerializer,
            OpenApiParameter(
                NEXT_OFFSET_HEADER, OpenApiTypes.INT, OpenApiParameter.HEADER, response=[200],
                description="The offset to ask for next to get only new output.",
            ),
        ],
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="Log text (UTF-8).")},
        summary="Read the log of a process",
        description=f"The log from byte `offset` on, as text/plain. Tail a running process by passing "
        f"the `{NEXT_OFFSET_HEADER}` header of each answer as the next `offset`.",
    )
    @action(detail=True, methods=["get"], content_negotiation_class=FixedFormatNegotiation)
    def logs(self, request, pk=None):
        query = LogQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        chunk = selectors.process_log_read(process=self.get_object(), offset=query.validated_data["offset"])
        response = HttpResponse(chunk.text, content_type="text/plain; charset=utf-8")
        response[NEXT_OFFSET_HEADER] = str(chunk.next_offset)
        return response


class RunsView(APIView):
    permission_classes = [CanRunJobs]

    @extend_schema(
        operation_id="runs_create",
        request=RunsSerializer,
        responses={202: ProcessSummarySerializer(many=True), 409: error_response(409)},
        summary="Start many runs at once",
        description="All or none: 400 names each bad entry by index (e.g. `runs.3.job`) and 409 gives the "
        "policy refusals (disabled job, `skip` policy); in both cases no run is created. The answer lists "
        "the new processes in the order of `runs`.",
    )
    @idempotent
    def post(self, request):
        body = RunsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        runs = body.validated_data["runs"]
        jobs = Job.objects.in_bulk({run["job"] for run in runs})
        missing = {
            index: {"job": [f"Job {run['job']} does not exist."]}
            for index, run in enumerate(runs) if run["job"] not in jobs
        }
        if missing:
            # Report bad parameters too, so one answer names every bad entry.
            for index, run in enumerate(runs):
                try:
                    services.validate_run_parameters(run["parameters"])
                except DjangoValidationError as exc:
                    missing.setdefault(index, {})["parameters"] = exc.messages
            raise ValidationError({"runs": dict(sorted(missing.items()))})
        requests = [services.RunRequest(job=jobs[run["job"]], parameters=run["parameters"]) for run in runs]
        try:
            processes = services.process_start_many(requests=requests, trigger=Trigger.API, user=request.user)
        except DjangoValidationError as exc:
            # The service keys parameter errors by the index of the run.
            raise ValidationError(
                {"runs": {index: {"parameters": messages} for index, messages in exc.message_dict.items()}}
            ) from None
        return Response(ProcessSummarySerializer(processes, many=True).data, status=status.HTTP_202_ACCEPTED)
