"""Logs from CloudWatch (moto) through the same selector the admin and API use; templates in S3."""

from __future__ import annotations

import contextlib
import time

import pytest
from django.core.exceptions import ValidationError

from processes.models import Process
from processes.selectors import process_log_read, process_log_tail
from runner.aws.client import aws_client
from runner.executors.aws_batch.tracking import batch_processes_track
from runner.template_source import TemplateFetchError, template_fetch
from runner.template_upload import template_store

pytestmark = pytest.mark.django_db
GROUP = "/aws/batch/job"


def put_log(stream: str, *messages: str) -> None:
    logs = aws_client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName=stream)
    logs.put_log_events(logGroupName=GROUP, logStreamName=stream, logEvents=[
        {"timestamp": int(time.time() * 1000) + index, "message": message} for index, message in enumerate(messages)
    ])


def test_log_of_every_attempt_is_read_from_cloudwatch_with_byte_offsets(submitted, batch_states):
    put_log("jtb/default/one", "[runner] started (attempt 1)", "host going away")
    put_log("jtb/default/two", "[runner] started (attempt 2)", "Hello, wörld!")
    batch_states[submitted.external_id] = {"status": "RUNNING", "attempts": [
        {"container": {"logStreamName": "jtb/default/one"}, "statusReason": "Host EC2 (instance i-1) terminated."},
    ], "container": {"logStreamName": "jtb/default/two"}}
    batch_processes_track()
    process = Process.objects.get(pk=submitted.pk)

    whole = process_log_read(process=process)
    first = process_log_read(process=process, offset=0, limit=40)
    rest = process_log_read(process=process, offset=first.next_offset)

    assert whole.text == (
        "[batch] attempt 1: log stream jtb/default/one\n[runner] started (attempt 1)\nhost going away\n"
        "[batch] attempt 2: log stream jtb/default/two\n[runner] started (attempt 2)\nHello, wörld!\n"
    )
    assert whole.next_offset == len(whole.text.encode())
    assert first.text + rest.text == whole.text
    assert process_log_read(process=process, offset=whole.next_offset).text == ""
    assert process_log_tail(process=process).endswith("Hello, wörld!\n")


def test_log_of_a_job_that_has_not_started_is_empty(submitted, batch_states):
    batch_states[submitted.external_id] = {"status": "RUNNABLE", "attempts": [], "container": {}}
    batch_processes_track()

    assert process_log_read(process=Process.objects.get(pk=submitted.pk)).text == ""
    # Batch named the stream but nothing was written to it yet.
    assert process_log_read(process=submitted, offset=0).text == ""


@pytest.fixture
def bucket(moto_server, settings):
    aws_client("s3").create_bucket(Bucket="jtb-templates")
    settings.JTB_TEMPLATE_BUCKETS = ["jtb-templates"]
    return "jtb-templates"


def test_template_uploaded_in_the_admin_goes_to_s3_and_runs_fetch_it_back(bucket, settings):
    settings.JTB_EXECUTOR = "aws_batch"
    settings.JTB_TEMPLATE_UPLOAD_URI = "s3://jtb-templates/templates/"

    uri = template_store(filename="C:\\Users\\ann\\report.py", content=b"def main(ctx):\n    pass\n")

    assert uri.startswith("s3://jtb-templates/templates/uploads/") and uri.endswith("/report.py")
    assert template_fetch(uri) == "def main(ctx):\n    pass\n"


def test_versioned_bucket_upload_returns_the_version_and_fetch_reads_that_version(bucket, settings):
    s3 = aws_client("s3")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    settings.JTB_TEMPLATE_UPLOAD_URI = "s3://jtb-templates/t/"

    uri = template_store(filename="job.py", content=b"# v1\n")
    key = uri.split("jtb-templates/")[1].split("?")[0]
    s3.put_object(Bucket=bucket, Key=key, Body=b"# v2\n")

    assert "?versionId=" in uri
    assert template_fetch(uri) == "# v1\n"


def test_template_upload_for_the_local_executor_lands_under_the_template_root(tmp_path, settings):
    settings.JTB_EXECUTOR = "local"
    settings.JTB_TEMPLATE_UPLOAD_URI = ""
    settings.JTB_TEMPLATE_ROOT = tmp_path

    path = template_store(filename="daily.py", content=b"def main(ctx):\n    return 1\n")

    assert path.startswith("uploads/") and path.endswith("/daily.py")
    assert template_fetch(path) == "def main(ctx):\n    return 1\n"


@pytest.mark.parametrize(("filename", "content", "message"), [
    ("notes.txt", b"x", "must be a Python file"),
    ("job.py", b"\xff\xfe", "UTF-8"),
])
def test_bad_uploads_are_refused_with_a_reason(tmp_path, settings, filename, content, message):
    settings.JTB_TEMPLATE_ROOT = tmp_path
    settings.JTB_EXECUTOR = "local"
    with pytest.raises(ValidationError, match=message):
        template_store(filename=filename, content=content)


def test_missing_s3_template_is_a_clear_failure(bucket):
    with pytest.raises(TemplateFetchError, match="does not exist"):
        template_fetch("s3://jtb-templates/jobs/nope.py")


def test_template_from_a_bucket_outside_the_allowed_list_is_refused(bucket):
    aws_client("s3").create_bucket(Bucket="someone-else")
    aws_client("s3").put_object(Bucket="someone-else", Key="x.py", Body=b"")
    with pytest.raises(TemplateFetchError, match="not one templates may come from"):
        template_fetch("s3://someone-else/x.py")


def test_access_denied_on_the_template_names_the_job_roles_permissions(bucket):
    from botocore.awsrequest import AWSResponse

    s3 = aws_client("s3")

    def deny(**kwargs):
        return AWSResponse("http://moto", 403, {}, None), {
            "Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    s3.meta.events.register("before-call.s3.GetObject", deny)
    try:
        with pytest.raises(TemplateFetchError, match="denied; check the job role's S3 permissions"):
            template_fetch("s3://jtb-templates/jobs/report.py")
    finally:
        s3.meta.events.unregister("before-call.s3.GetObject", deny)
