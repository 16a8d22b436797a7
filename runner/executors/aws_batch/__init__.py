"""The AWS Batch executor: each run is one Batch job whose container runs the runner.

Submitting (exactly once) is in `submission`, tracking Batch's answers in `tracking` and
`events`; the AWS calls themselves are in runner.aws.
"""

from runner.executors.aws_batch.executor import AwsBatchExecutor

__all__ = ["AwsBatchExecutor"]
