"""`manage.py run_all`: the whole system in the foreground on one machine, until Ctrl-C.

Starts the web server (gunicorn), a control worker (dispatch and upkeep), a local-run worker
(one slot per concurrent run, JTB_LOCAL_SLOTS) and Celery beat under a supervisor that restarts
whichever dies (runner/supervisor/). Their logs go to files under the data folder; the terminal
shows a banner, then only warnings and run outcomes. `--setup` first migrates the database and
runs `bootstrap`, so the banner can show the admin password made for a new machine.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, load_command_class
from django.core.management.base import BaseCommand, CommandError

from runner.supervisor.outcomes import OutcomeFeed
from runner.supervisor.state import AlreadyRunning
from runner.supervisor.supervisor import ChildSpec, Supervisor, signals_install


def system_log_dir() -> Path:
    return settings.DATA_DIR / "logs"


def child_specs(port: int, bind: str) -> list[ChildSpec]:
    python = sys.executable
    logs = system_log_dir()
    celery = [python, "-m", "celery", "-A", "jobtarget_batch"]
    # The file-system broker has no broadcast: worker gossip, mingle and heartbeats are off.
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]
    beat_pid = settings.DATA_DIR / "beat.pid"
    return [
        ChildSpec(
            "web",
            [python, "-m", "gunicorn", "jobtarget_batch.wsgi", "--bind", f"{bind}:{port}", "--workers", "2",
             "--threads", "4", "--graceful-timeout", "5",
             # gunicorn's control socket is one path per user: a second instance would take it over.
             "--no-control-socket", "--access-logfile", str(logs / "web-access.log")],
            logs / "web.log", needs_port=True,
        ),
        ChildSpec(
            "control-worker",
            [*celery, "worker", "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-c", "2", "-n", "control@%h", *quiet],
            logs / "control-worker.log",
        ),
        ChildSpec(
            "local-worker",
            [*celery, "worker", "-Q", settings.JTB_LOCAL_QUEUE, "-c", str(settings.JTB_LOCAL_SLOTS),
             "-n", "local@%h", *quiet],
            logs / "local-worker.log",
            # Killed outright, pool and all: a run's watcher stopped any other way kills its runner
            # on the way out. Killed, it leaves the runner (its own session) to finish and record
            # its result; the worker's unacknowledged messages are delivered again on the next start.
            stop_signal=signal.SIGKILL,
        ),
        ChildSpec(
            "beat",
            [*celery, "beat", "--scheduler", settings.CELERY_BEAT_SCHEDULER, "--loglevel", "INFO",
             "--pidfile", str(beat_pid)],
            logs / "beat.log",
            # Our beat is stopped (or was killed with its group): a pid file left behind is stale.
            before_start=lambda: beat_pid.unlink(missing_ok=True),
        ),
    ]


class Command(BaseCommand):
    help = "Run the web server, workers and scheduler in the foreground until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--setup", action="store_true",
                            help="Migrate the database and create the admin user and example jobs first.")

    def handle(self, *args, setup: bool = False, **options):
        port = int(os.environ.get("PORT", "8000"))
        bind = os.environ.get("BIND", "127.0.0.1")
        created = self._setup() if setup else None
        supervisor = Supervisor(
            specs=child_specs(port, bind), data_dir=settings.DATA_DIR, bind=bind, port=port,
            cwd=settings.BASE_DIR, say=self._say, warn=self._warn, outcomes=OutcomeFeed(),
        )
        try:
            supervisor.prepare()
        except (AlreadyRunning, RuntimeError) as exc:
            raise CommandError(str(exc)) from None
        signals_install(supervisor)
        supervisor.start_all()
        self._banner(bind, port, created)
        supervisor.run()
        self._say("Stopped.")

    def _setup(self) -> tuple[str, str | None] | None:
        call_command("migrate", interactive=False, verbosity=0)
        # Loaded by name as Django does (management commands of two apps do not import each other).
        bootstrap = load_command_class("jobs", "bootstrap")
        call_command(bootstrap, stdout=io.StringIO(), stderr=io.StringIO())
        return bootstrap.created_admin

    def _banner(self, bind: str, port: int, created: tuple[str, str | None] | None) -> None:
        host = "localhost" if bind in ("0.0.0.0", "::") else bind
        if created and created[1]:
            user = f"{created[0]}   password: {created[1]}   (shown once: write it down)"
        elif created:
            user = f"{created[0]}   (password from DJANGO_SUPERUSER_PASSWORD)"
        else:
            admin = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
            user = f"{admin.get_username()}   (password set at first start)" if admin else "none yet: run bootstrap"
        self._say("\n".join([
            "JobTarget Batch is running.",
            f"  Admin:  http://{host}:{port}/admin/",
            f"  User:   {user}",
            f"  Logs:   {system_log_dir()}/ (web, web-access, control-worker, local-worker, beat; runs in "
            f"{settings.JTB_LOG_DIR}/process-<id>.log)",
            "  Stop:   Ctrl-C",
            "From here on: warnings and run outcomes only.",
        ]))

    def _say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def _warn(self, text: str) -> None:
        self.stdout.write(self.style.WARNING(text))
        self.stdout.flush()
