"""`/api/v1/jobs/` and `/api/v1/schedules/`: thin views over `jobs.services` and `processes.services`."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobs import services
from jobs.history import versions_list
from jobs.masking import user_may_read_environment
from jobs.models import Job, Schedule
from jobs.serializers import JobSerializer, ScheduleSerializer, VersionSerializer
from jobtarget_batch.api.fields import JSONObjectField, StrictFieldsMixin
from jobtarget_batch.api.idempotency import idempotent
from jobtarget_batch.api.permissions import CanRunJobs, CanView, ModelPermissions
from jobtarget_batch.api.schema import error_response
from processes.models import Trigger
from processes.serializers import ProcessSerializer
from processes.services import process_start
from runner.log_retention import log_remover


class RunParametersSerializer(StrictFieldsMixin, serializers.Serializer):
    parameters = JSONObjectField(
        required=False, default=dict,
        help_text="Overrides of the job's default parameters for this run, e.g. {\"since\": \"2024-01-01\"}.",
    )


# The change reason kept in the audit history for changes made through the API.
AUDIT_REASON = "api"


def _apply(instance, data: dict):
    for name, value in data.items():
        setattr(instance, name, value)
    return instance


@extend_schema_view(
    destroy=extend_schema(
        responses={204: None, 202: OpenApiResponse(description="The job had a long history: it is disabled now, "
                                                   "and its runs then the job are deleted in the background."),
                   409: error_response(409)},
        description="Deletes the job and its history; refused (409) while a run is active. A job with more than "
        f"{services.JOB_DELETE_INLINE_RUNS} runs answers 202: it is disabled at once and deleted in the background (it stays readable until then).",
    ),
)
class JobViewSet(viewsets.ModelViewSet):
    queryset = Job.objects.order_by("name")
    lookup_value_regex = "[^/]+"
    serializer_class = JobSerializer
    permission_classes = [ModelPermissions]

    def get_permissions(self):
        if self.action == "run":
            return [CanView(), CanRunJobs()]
        return super().get_permissions()

    def perform_create(self, serializer):
        serializer.instance = services.job_save(
            job=Job(**serializer.validated_data), user=self.request.user, reason=AUDIT_REASON
        )

    def perform_update(self, serializer):
        serializer.instance = services.job_save(
            job=_apply(serializer.instance, serializer.validated_data), user=self.request.user, reason=AUDIT_REASON
        )

    def destroy(self, request, *args, **kwargs):
        if services.job_delete(job=self.get_object(), remove_logs=log_remover(), user=request.user, reason=AUDIT_REASON):
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={200: VersionSerializer(many=True)},
        summary="The change history of a job",
        description="Every kept version of the job, newest first (at most 200): who changed it, when, from where "
        "and each changed field before and after. Environment values are masked as on the job itself.",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request, pk=None):
        job = self.get_object()
        versions = versions_list(
            history_queryset=Job.history.filter(id=job.pk),
            can_see_environment=user_may_read_environment(request.user),
        )
        return Response(VersionSerializer(versions, many=True).data)

    @extend_schema(
        request=RunParametersSerializer,
        responses={202: ProcessSerializer, 409: error_response(409)},
        summary="Run the job now",
        description="Starts a run with the job's default parameters merged with `parameters`. 409 when the "
        "job is disabled or its concurrency policy (`skip`) refuses a second active run.",
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def run(self, request, pk=None):
        job = self.get_object()
        body = RunParametersSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            process = process_start(
                job=job, trigger=Trigger.API, user=request.user, parameters=body.validated_data["parameters"]
            )
        except DjangoValidationError as exc:
            # The service checks the parameters (the only input it validates) and says so in the message.
            raise ValidationError({"parameters": exc.messages}) from None
        return Response(ProcessSerializer(process).data, status=status.HTTP_202_ACCEPTED)


class ScheduleViewSet(viewsets.ModelViewSet):
    queryset = Schedule.objects.order_by("job_id", "id")
    lookup_value_regex = "[^/]+"
    serializer_class = ScheduleSerializer
    permission_classes = [ModelPermissions]

    def perform_create(self, serializer):
        serializer.instance = services.schedule_save(
            schedule=Schedule(**serializer.validated_data), user=self.request.user, reason=AUDIT_REASON
        )

    def perform_update(self, serializer):
        serializer.instance = services.schedule_save(
            schedule=_apply(serializer.instance, serializer.validated_data), user=self.request.user,
            reason=AUDIT_REASON,
        )

    def perform_destroy(self, instance):
        services.schedule_delete(schedule=instance, user=self.request.user, reason=AUDIT_REASON)

    @extend_schema(
        responses={200: VersionSerializer(many=True)},
        summary="The change history of a schedule",
        description="Every kept version of the schedule, newest first (at most 200), with who, when and what changed.",
    )
    @action(detail=True, methods=["get"], pagination_class=None)
    def history(self, request, pk=None):
        schedule = self.get_object()
        versions = versions_list(history_queryset=Schedule.history.filter(id=schedule.pk), can_see_environment=False)
        return Response(VersionSerializer(versions, many=True).data)
