"""The local executor: runs on this machine as runner subprocesses watched by a Celery worker."""

from runner.executors.local.executor import LocalExecutor

__all__ = ["LocalExecutor"]
