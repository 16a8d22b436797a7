"""`manage.py run_all`: the whole system in the foreground on one machine, until Ctrl-C.

Starts the web server (gunicorn), a control worker (dispatch and upkeep), a local-run worker
(one slot per concurrent run, JTB_LOCAL_SLOTS) and Celery beat, and stops them all when one stops
or on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


def commands(port: int, bind: str) -> dict[str, list[str]]:
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "jobtarget_batch"]
    # The file-system broker has no broadcast: worker gossip, mingle and heartbeats are off.
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]
    return {
        "web": [python, "-m", "gunicorn", "jobtarget_batch.wsgi", "--bind", f"{bind}:{port}",
                "--workers", "2", "--threads", "4", "--access-logfile", "-"],
        "control-worker": [*celery, "worker", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-c", "2",
                           "-n", "control@%h", *quiet],
        "local-worker": [*celery, "worker", "-Q", settings.JTB_LOCAL_QUEUE, "-c", str(settings.JTB_LOCAL_SLOTS),
                         "-n", "local@%h", *quiet],
        "beat": [*celery, "beat", "--scheduler", settings.CELERY_BEAT_SCHEDULER, "--loglevel", "INFO",
                 "--pidfile", str(settings.DATA_DIR / "beat.pid")],
    }


class Command(BaseCommand):
    help = "Run the web server, workers and scheduler in the foreground until Ctrl-C."

    def handle(self, *args, **options):
        port = int(os.environ.get("PORT", "8000"))
        bind = os.environ.get("BIND", "127.0.0.1")
        children: dict[str, subprocess.Popen] = {}
        for name, command in commands(port, bind).items():
            children[name] = subprocess.Popen(command, cwd=settings.BASE_DIR)
        self.stdout.write(self.style.SUCCESS(
            f"JobTarget Batch is running: admin at http://{bind if bind != '0.0.0.0' else 'localhost'}:{port}/admin/ "
            "— press Ctrl-C to stop."
        ))
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with code {child.returncode}; stopping everything.")
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 20
            for child in children.values():
                try:
                    child.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    child.kill()
