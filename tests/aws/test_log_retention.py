"""Purged AWS Batch runs take their CloudWatch log streams with them (moto), when asked to."""

from __future__ import annotations

import contextlib

import pytest

from processes.retention import PurgedRun
from runner.aws.client import aws_client
from runner.log_retention import process_logs_delete

GROUP = "/aws/batch/job"


def streams() -> set[str]:
    answer = aws_client("logs").describe_log_streams(logGroupName=GROUP)
    return {stream["logStreamName"] for stream in answer["logStreams"]}


@pytest.fixture
def logs(moto_server, settings):
    settings.JTB_BATCH_LOG_GROUP = GROUP
    client = aws_client("logs")
    with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
        client.create_log_group(logGroupName=GROUP)
    for name in ("jtb/default/a1", "jtb/default/a2", "jtb/default/keep"):
        client.create_log_stream(logGroupName=GROUP, logStreamName=name)
    return client


def test_cloudwatch_streams_of_purged_batch_runs_are_deleted_only_when_asked(logs, tmp_path, settings):
    settings.JTB_LOG_DIR = tmp_path
    run = PurgedRun(id=7, executor="aws_batch",
                    executor_details={"log_streams": ["jtb/default/a1", "jtb/default/a2", "jtb/default/gone"]})

    assert process_logs_delete([run]) == 0
    assert streams() == {"jtb/default/a1", "jtb/default/a2", "jtb/default/keep"}

    # A stream already gone counts as deleted; the other run's stream stays.
    assert process_logs_delete([run], cloudwatch=True) == 3
    assert streams() == {"jtb/default/keep"}
