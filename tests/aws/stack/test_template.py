"""deploy/aws/jobtarget-batch.yaml: cfn-lint clean, and what it must create the way the issue says."""

from __future__ import annotations

import pytest
from cfnlint import api as cfnlint_api
from cfnlint.decode.decode import decode_str

from tests.aws.stack.conftest import TEMPLATE


def _template() -> dict:
    template, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    return template


def test_template_passes_cfn_lint():
    matches = cfnlint_api.lint_file(TEMPLATE)
    assert [str(match) for match in matches] == []


@pytest.mark.parametrize("logical_id", ["CpuComputeEnvironment", "GpuComputeEnvironment"])
def test_instance_environments_are_spot_price_capacity_optimized_and_scale_to_zero(logical_id):
    compute = _template()["Resources"][logical_id]["Properties"]["ComputeResources"]
    assert compute["MinvCpus"] == 0
    assert compute["Type"] == {"Fn::If": ["UseSpot", "SPOT", "EC2"]}
    assert compute["AllocationStrategy"] == {
        "Fn::If": ["UseSpot", "SPOT_PRICE_CAPACITY_OPTIMIZED", "BEST_FIT_PROGRESSIVE"]
    }


def test_template_bucket_is_versioned_and_private():
    bucket = _template()["Resources"]["TemplateBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_every_output_names_the_setting_it_sets():
    outputs = _template()["Outputs"]
    settings_named = {output["Description"] for output in outputs.values() if output["Description"].isupper()}
    assert {
        "JTB_EXECUTOR", "AWS_REGION", "JTB_BATCH_JOB_QUEUE", "JTB_BATCH_FARGATE_QUEUES", "JTB_BATCH_JOB_DEFINITION",
        "JTB_BATCH_IMAGE", "JTB_BATCH_JOB_ROLE_ARN", "JTB_BATCH_EXECUTION_ROLE_ARN", "JTB_BATCH_LOG_GROUP",
        "JTB_BATCH_DATABASE_URL_SECRET_ARN", "JTB_TEMPLATE_BUCKETS", "JTB_TEMPLATE_UPLOAD_URI",
        "JTB_SCHEDULER_ROLE_ARN", "JTB_SCHEDULER_GROUP", "JTB_BATCH_NAME_PREFIX", "CELERY_BROKER_URL",
    } <= settings_named
