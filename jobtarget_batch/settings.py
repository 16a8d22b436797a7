"""Settings for JobTarget Batch, read from environment variables.

With no variable set the whole system runs on one machine: SQLite under `var/`, a Celery broker
on the local file system, the local executor and e-mail printed to the console.
"""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from jobtarget_batch.env import (
    env_bool,
    env_choice,
    env_decimal,
    env_int,
    env_list,
    env_str,
    parse_database_url,
    sqlite_options,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("JTB_DATA_DIR", str(BASE_DIR / "var"))).resolve()


DEBUG = env_bool("DEBUG", False)


# --- Security: signing key (issue 11) --------------------------------------------------------------
def _secret_key() -> str:
    """SECRET_KEY (or SECRET_KEY_FILE), else the key file `make run` writes explicitly
    (jobtarget_batch.secret_key_file). With DEBUG off and neither, the app refuses to start: a key
    invented here would be written world-readable or differ between processes."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    try:
        return (DATA_DIR / "secret_key").read_text().strip()
    except FileNotFoundError:
        pass
    # The AWS Batch runner signs nothing (no sessions, no tokens): its job definition says so.
    if DEBUG or env_bool("JTB_RUNNER_ONLY", False):
        return secrets.token_urlsafe(50)
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) for production, or run "
        "`python -m jobtarget_batch.secret_key_file` once for a single-machine start (make run does)."
    )


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # The stock admin with the operations console as its home page (console/sites.py).
    "console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Swagger UI and ReDoc served from this package's static files, not a CDN.
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "simple_history",
    "axes",
    "jobs",
    "processes",
    "runner",
    "console",
    "alerts",
    "monitoring",
]

MIDDLEWARE = [
    # First: a load balancer's probe gets /healthz and /readyz without host checks, HTTPS
    # redirects or sessions (monitoring/health.py).
    "monitoring.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before anything reads a parameter: NUL and lone surrogates in query strings and forms are a 400.
    "jobtarget_batch.middleware.InputGateMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Shows times in the signed-in person's own zone (console.UserPreferences).
    "console.middleware.ViewerTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Who changed a job or schedule, for its history (django-simple-history).
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, so it sees the outcome of the login view (django-axes lockout).
    "axes.middleware.AxesMiddleware",
    "jobtarget_batch.middleware.ApiServerErrorMiddleware",
]

ROOT_URLCONF = "jobtarget_batch.urls"
WSGI_APPLICATION = "jobtarget_batch.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
_database_url = env_str("DATABASE_URL")
# Or fetched by this process itself from Secrets Manager (a URL or RDS's JSON): the credential is
# then in no environment at all, not even the container's (runner/aws/secrets.py).
DATABASE_SECRET_ARN = env_str("DATABASE_SECRET_ARN")
if not _database_url and DATABASE_SECRET_ARN:
    from runner.aws.secrets import SecretError, database_url_from_secret

    try:
        _database_url = database_url_from_secret(DATABASE_SECRET_ARN)
    except SecretError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
if _database_url:
    DATABASES = {"default": parse_database_url(_database_url)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "db.sqlite3"),
            "OPTIONS": sqlite_options(),
        }
    }
# The embedded SQLite file holds every user's password hash and token: it is made owner-only
# (0600) when the first connection opens it (processes.apps), not here: settings write no files.
# Tests run runners and workers as subprocesses, so the SQLite test database must be a file.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Times with seconds and the zone's name ("2026-11-30 09:15:02 CET") wherever Django formats one.
FORMAT_MODULE_PATH = ["console.formats"]

STATIC_URL = "static/"
# Only `collectstatic` (the container image) needs a folder: otherwise WhiteNoise serves the apps'
# assets straight from the finders, so `make run` needs no collectstatic step.
STATIC_ROOT = env_str("STATIC_ROOT") or None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- E-mail -------------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "jobtarget-batch@localhost")
# Where django.core.mail.backends.filebased.EmailBackend writes messages, if chosen.
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))

# --- Celery -------------------------------------------------------------------------------------
BROKER_DIR = DATA_DIR / "broker"


def broker_transport_options(url: str) -> dict:
    """The file-system broker keeps its folders in the data dir (kombu's default is ./control ...)."""
    if not url.startswith(("filesystem://", "jtb-filesystem://")):
        return {}
    return {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Messages a worker holds until it acknowledges them (jtb-filesystem only).
        "claimed_folder": str(BROKER_DIR / "claimed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # An idle worker looks for new messages this often (seconds): the wait before a run starts,
        # and, with a backlog, between one local run's end and the next one's start (a listing of
        # one folder: cheap at 10 a second; 0.25 cost ~10% of the soak's throughput).
        "polling_interval": 0.1,
    }


# "localhost" only names the machine: kombu warns about a broker URL without a host.
# jtb-filesystem:// is our file-system transport (jobtarget_batch/broker.py): kombu's stock
# filesystem:// can hand a consumer a half-written message and loses what a killed worker held.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "jtb-filesystem://localhost//")
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = env_str("JTB_CONTROL_QUEUE", "jtb-control")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- JobTarget Batch ----------------------------------------------------------------------------
# The engines that run processes, by name: a dotted path to a processes.executors.Executor. Adding
# an engine is one package and one line here.
JTB_EXECUTORS = {
    "local": "runner.executors.local.LocalExecutor",
    "aws_batch": "runner.executors.aws_batch.AwsBatchExecutor",
}
JTB_EXECUTOR = env_choice("JTB_EXECUTOR", "local", set(JTB_EXECUTORS))
JTB_BASE_URL = env_str("JTB_BASE_URL", "http://localhost:8000").rstrip("/")
JTB_TEMPLATE_ROOT = Path(env_str("JTB_TEMPLATE_ROOT", str(BASE_DIR / "templates"))).resolve()
JTB_LOG_DIR = Path(env_str("JTB_LOG_DIR", str(DATA_DIR / "logs"))).resolve()
JTB_ENV_ROOT = Path(env_str("JTB_ENV_ROOT", str(DATA_DIR / "envs"))).resolve()
JTB_WORK_DIR = Path(env_str("JTB_WORK_DIR", str(DATA_DIR / "work"))).resolve()
# Where uv installs job modules from; empty means uv's default (PyPI).
JTB_PACKAGE_INDEX_URL = env_str("JTB_PACKAGE_INDEX_URL")
# s3://bucket/prefix where built module environments are shared between hosts (a fresh
# container unpacks one instead of installing); empty means each host builds its own.
JTB_ENV_S3_PREFIX = env_str("JTB_ENV_S3_PREFIX")
# The interpreter job environments are made from (empty: the runner's own). With
# JTB_TEMPLATE_USER (read by the runner from its environment, runner/isolation.py) it must be one
# that user may run.
JTB_TEMPLATE_PYTHON = env_str("JTB_TEMPLATE_PYTHON")
# How many local runs may execute at once (the local executor's worker concurrency).
JTB_LOCAL_SLOTS = env_int("JTB_LOCAL_SLOTS", 4, minimum=1)
JTB_LOCAL_QUEUE = env_str("JTB_LOCAL_QUEUE", "jtb-local")
# Where the local worker's slot locks live (runner/executors/local/slots.py): one folder per host,
# shared by every local worker of this machine, so runners left over from a killed worker count.
JTB_LOCAL_SLOTS_DIR = Path(env_str("JTB_LOCAL_SLOTS_DIR", str(DATA_DIR / "local-slots"))).resolve()
# Test-only fault hook (never set it in production): while this file exists, a local watcher waits
# between its claim of a run and the start of its runner (at most 5 minutes), so a test can kill
# the watcher in that window.
JTB_TEST_WATCHER_PAUSE_FILE = env_str("JTB_TEST_WATCHER_PAUSE_FILE")
# Seconds a runner waits after SIGTERM before the tree is killed.
JTB_KILL_GRACE_SECONDS = env_int("JTB_KILL_GRACE_SECONDS", 10, minimum=1)
JTB_HEARTBEAT_SECONDS = env_int("JTB_HEARTBEAT_SECONDS", 15, minimum=1)
# How often a runner looks for a cancel request itself (one indexed primary-key read).
JTB_CANCEL_CHECK_SECONDS = env_int("JTB_CANCEL_CHECK_SECONDS", 3, minimum=1)
# The sweeper: a run `queued` this long has its submit message sent again (then after 2x, 4x ...
# as long); a local run `submitted` this long without a runner is queued again (its worker died).
JTB_QUEUED_RESEND_SECONDS = env_int("JTB_QUEUED_RESEND_SECONDS", 300, minimum=10)
JTB_SUBMITTED_LOST_SECONDS = env_int("JTB_SUBMITTED_LOST_SECONDS", 120, minimum=10)
# How long the API remembers the answer to a request sent with an Idempotency-Key.
JTB_IDEMPOTENCY_SECONDS = env_int("JTB_IDEMPOTENCY_SECONDS", 24 * 3600, minimum=60)
# A running process whose heartbeat is older than this is "runner lost".
JTB_HEARTBEAT_TIMEOUT_SECONDS = env_int("JTB_HEARTBEAT_TIMEOUT_SECONDS", 120, minimum=5)

JTB_DEFAULT_VCPUS = env_decimal("JTB_DEFAULT_VCPUS", Decimal("1"))
JTB_DEFAULT_MEMORY_MIB = env_int("JTB_DEFAULT_MEMORY_MIB", 2048, minimum=6)
JTB_DEFAULT_TIMEOUT_SECONDS = env_int("JTB_DEFAULT_TIMEOUT_SECONDS", 3600, minimum=1)

# --- Cost estimate ------------------------------------------------------------------------------
# On-demand prices per hour (defaults: AWS Fargate Linux/x86 in us-east-1 for vCPU and memory, a
# g4dn.xlarge for a GPU); a run on one of JTB_COST_SPOT_QUEUES pays JTB_COST_SPOT_FACTOR of them.
# Each finished run stores resources × duration × these prices (processes.pricing).
# The console's trends (its charts) are computed at most this often per window and
# zone: at a million runs a month each reads every run of its window. 0 computes them each time.
JTB_CONSOLE_TRENDS_CACHE_SECONDS = env_int("JTB_CONSOLE_TRENDS_CACHE_SECONDS", 60, minimum=0)
JTB_COST_CURRENCY = env_str("JTB_COST_CURRENCY", "USD")
JTB_COST_VCPU_HOUR = env_decimal("JTB_COST_VCPU_HOUR", Decimal("0.04048"))
JTB_COST_GIB_HOUR = env_decimal("JTB_COST_GIB_HOUR", Decimal("0.004445"))
JTB_COST_GPU_HOUR = env_decimal("JTB_COST_GPU_HOUR", Decimal("0.526"))
JTB_COST_SPOT_FACTOR = env_decimal("JTB_COST_SPOT_FACTOR", Decimal("0.3"))
JTB_COST_SPOT_QUEUES = env_list("JTB_COST_SPOT_QUEUES", [])
if JTB_COST_SPOT_FACTOR <= 0 or JTB_COST_SPOT_FACTOR > 1:
    raise ImproperlyConfigured("JTB_COST_SPOT_FACTOR must be more than 0 and at most 1, e.g. 0.3")
for _name in ("JTB_COST_VCPU_HOUR", "JTB_COST_GIB_HOUR", "JTB_COST_GPU_HOUR"):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name} is a price per hour and cannot be negative, e.g. 0.04")

# --- AWS ----------------------------------------------------------------------------------------
AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
# Point every AWS client at another endpoint (tests use a moto server on loopback).
AWS_ENDPOINT_URL = env_str("AWS_ENDPOINT_URL")
# S3 buckets templates may come from; empty means any.
JTB_TEMPLATE_BUCKETS = env_list("JTB_TEMPLATE_BUCKETS", [])

# --- AWS Batch ----------------------------------------------------------------------------------
# Used when JTB_EXECUTOR=aws_batch (docs/aws.md). A job's own `queue` overrides the default queue.
JTB_BATCH_JOB_QUEUE = env_str("JTB_BATCH_JOB_QUEUE", "jtb-default")
# The runner's job definition (`manage.py batch_sync` registers it); Fargate queues use
# "<name>-fargate".
JTB_BATCH_JOB_DEFINITION = env_str("JTB_BATCH_JOB_DEFINITION", "jtb-runner")
# Platforms batch_sync registers a definition for: EC2, FARGATE or both.
JTB_BATCH_PLATFORMS = env_list("JTB_BATCH_PLATFORMS", ["EC2", "FARGATE"])
# Job queues whose compute environments are Fargate (their jobs use the -fargate definition).
JTB_BATCH_FARGATE_QUEUES = env_list("JTB_BATCH_FARGATE_QUEUES", [])
JTB_BATCH_IMAGE = env_str("JTB_BATCH_IMAGE", "jobtarget-batch:latest")
# Role the runner's code assumes (S3 templates, CloudWatch); and the role ECS uses to pull the
# image and read the secrets below.
JTB_BATCH_JOB_ROLE_ARN = env_str("JTB_BATCH_JOB_ROLE_ARN")
JTB_BATCH_EXECUTION_ROLE_ARN = env_str("JTB_BATCH_EXECUTION_ROLE_ARN")
JTB_BATCH_LOG_GROUP = env_str("JTB_BATCH_LOG_GROUP", "/aws/batch/job")
JTB_BATCH_LOG_STREAM_PREFIX = env_str("JTB_BATCH_LOG_STREAM_PREFIX", "jtb")
# Secrets Manager or SSM Parameter Store ARN holding the runner's DATABASE_URL. The container
# gets it as a secret, never as a plain environment value in the job definition.
JTB_BATCH_DATABASE_URL_SECRET_ARN = env_str("JTB_BATCH_DATABASE_URL_SECRET_ARN")
# More secrets for the runner, "NAME=arn,NAME=arn" (e.g. SECRET_KEY=arn:aws:ssm:...).
JTB_BATCH_SECRETS = env_list("JTB_BATCH_SECRETS", [])
# Fargate tasks in public subnets need a public IP to pull the image.
JTB_BATCH_FARGATE_ASSIGN_PUBLIC_IP = env_bool("JTB_BATCH_FARGATE_ASSIGN_PUBLIC_IP", False)
# Prefix of Batch job names and tags, so two deployments can share an account and queue.
JTB_BATCH_NAME_PREFIX = env_str("JTB_BATCH_NAME_PREFIX", "jtb")
# SubmitJob calls a second per worker process (AWS allows 50 per account: divide it among the
# worker processes that dispatch runs).
JTB_BATCH_SUBMITS_PER_SECOND = env_decimal("JTB_BATCH_SUBMITS_PER_SECOND", Decimal("50"))
# How often the tracker describes the Batch jobs of active runs.
JTB_BATCH_TRACK_SECONDS = env_int("JTB_BATCH_TRACK_SECONDS", 30, minimum=5)
# A run `submitted` without a Batch job id for this long is looked up by name (and submitted
# again when Batch has no such job): the worker died between SubmitJob and saving the id.
JTB_BATCH_SUBMIT_GRACE_SECONDS = env_int("JTB_BATCH_SUBMIT_GRACE_SECONDS", 120, minimum=10)
# Longest wait in RUNNABLE (no capacity) before the job is cancelled and the run fails;
# per queue with "queue=seconds,queue=seconds".
JTB_BATCH_RUNNABLE_MAX_SECONDS = env_int("JTB_BATCH_RUNNABLE_MAX_SECONDS", 6 * 3600, minimum=60)


def _seconds_by_queue(name: str) -> dict[str, int]:
    result = {}
    for item in env_list(name, []):
        queue, _, value = item.partition("=")
        if not queue.strip() or not value.strip().isdigit() or int(value) < 60:
            raise ImproperlyConfigured(f"{name} must read queue=seconds,queue=seconds (at least 60), got {item!r}")
        result[queue.strip()] = int(value)
    return result


JTB_BATCH_RUNNABLE_MAX_SECONDS_BY_QUEUE = _seconds_by_queue("JTB_BATCH_RUNNABLE_MAX_SECONDS_BY_QUEUE")
# Where the admin's template uploads go: s3://bucket/prefix/ (empty: the local template root).
JTB_TEMPLATE_UPLOAD_URI = env_str("JTB_TEMPLATE_UPLOAD_URI")
# Optional: an SQS queue an EventBridge rule fills with "Batch Job State Change" events
# (docs/aws.md), so Batch states show within seconds; empty turns it off (the tracker still runs).
JTB_BATCH_EVENTS_QUEUE_URL = env_str("JTB_BATCH_EVENTS_QUEUE_URL")
# How often the queue is read, and how long each read waits for a message (SQS long polling, <= 20).
JTB_BATCH_EVENTS_SECONDS = env_int("JTB_BATCH_EVENTS_SECONDS", 10, minimum=1)
JTB_BATCH_EVENTS_WAIT_SECONDS = env_int("JTB_BATCH_EVENTS_WAIT_SECONDS", 2, minimum=0)
if JTB_BATCH_EVENTS_WAIT_SECONDS > 20:
    raise ImproperlyConfigured("JTB_BATCH_EVENTS_WAIT_SECONDS must be at most 20 (SQS long polling)")

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes a missing credential a 401, not a 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["jobtarget_batch.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "jobtarget_batch.api.pagination.PagePagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "jobtarget_batch.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "jobtarget_batch.api.schema.AutoSchema",
    "LIST_SERIALIZER_ERRORS_AS_DICT": True,
    # Scoped throttles (jobtarget_batch.api.auth): the token exchange is a password-guessing target.
    "DEFAULT_THROTTLE_RATES": {"auth": env_str("JTB_AUTH_THROTTLE_RATE", "10/minute")},
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "JobTarget Batch API",
    "DESCRIPTION": (
        "Define, run and monitor Python batch jobs. Authenticate with `Authorization: Token <key>` "
        "(POST /api/v1/auth/token/, or made in the admin) or an admin session. Every error has the "
        "shape {message, code, errors}."
    ),
    "VERSION": "1.0.0",
    # Served by the app (drf-spectacular-sidecar), so the docs work without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "REDOC_UI_SETTINGS": {"theme": {"typography": {
        "fontFamily": "system-ui, sans-serif", "headings": {"fontFamily": "system-ui, sans-serif"},
    }}},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobtarget_batch.api.schema.security_schemes_token_first",
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ProcessStatusEnum": "processes.models.ProcessStatus",
        "TriggerEnum": "processes.models.Trigger",
        "ConcurrencyPolicyEnum": "jobs.models.ConcurrencyPolicy",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- Schedules ----------------------------------------------------------------------------------
# The zone a new schedule's cron is read in unless it names another (IANA name).
JTB_SCHEDULE_DEFAULT_TIMEZONE = env_str("JTB_SCHEDULE_DEFAULT_TIMEZONE", TIME_ZONE)
# How often beat runs the tick that starts every due schedule (docs/schedules.md): a run starts
# at most this many seconds (plus the time to start the minute's runs) after its time.
JTB_SCHEDULE_TICK_SECONDS = env_int("JTB_SCHEDULE_TICK_SECONDS", 2, minimum=1)
# Schedules claimed and started per transaction by one tick.
JTB_SCHEDULE_TICK_BATCH = env_int("JTB_SCHEDULE_TICK_BATCH", 1000, minimum=1)
# A tick finding more than one batch due asks this many more workers to tick with it.
JTB_SCHEDULE_TICK_HELPERS = env_int("JTB_SCHEDULE_TICK_HELPERS", 1, minimum=0)
# A tick is "missed" when it is found due more than this many seconds late (beat or workers
# were down). Of a schedule's missed ticks at most JTB_SCHEDULE_MISSED_RUNS (the latest ones)
# still start a run; 0 drops them all.
JTB_SCHEDULE_GRACE_SECONDS = env_int("JTB_SCHEDULE_GRACE_SECONDS", 60, minimum=1)
JTB_SCHEDULE_MISSED_RUNS = env_int("JTB_SCHEDULE_MISSED_RUNS", 1, minimum=0)
# EventBridge Scheduler (driver "eventbridge"): the schedule group our schedules live in, the
# prefix of their names (`schedules_sync` removes remote schedules with this prefix that match
# no schedule here), the role Scheduler assumes to call batch:SubmitJob, and how long it keeps
# retrying a delivery.
JTB_SCHEDULER_GROUP = env_str("JTB_SCHEDULER_GROUP", "jobtarget-batch")
JTB_SCHEDULER_NAME_PREFIX = env_str("JTB_SCHEDULER_NAME_PREFIX", "jtb-schedule")
JTB_SCHEDULER_ROLE_ARN = env_str("JTB_SCHEDULER_ROLE_ARN")
JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS = env_int("JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS", 3600, minimum=60)
# Optional periodic EventBridge repair (what `manage.py schedules_sync` does); 0 turns it off.
JTB_SCHEDULER_SYNC_SECONDS = env_int("JTB_SCHEDULER_SYNC_SECONDS", 0, minimum=0)
# How often the control plane finalizes finished runs nobody finalized yet (a run that ended in a
# container: its failure e-mail and the next queued run wait at most this long).
JTB_FINALIZE_SECONDS = env_int("JTB_FINALIZE_SECONDS", 10, minimum=1)


# --- History at scale: search and retention (docs/history.md) -------------------------------------
# Free-text search (failure reasons, step names) reads at most this many newest rows: no index
# serves "contains", so the search is bounded to recent history. Ids, executor ids, job names and
# usernames are searched through indexes over the whole history.
JTB_SEARCH_TEXT_WINDOW = env_int("JTB_SEARCH_TEXT_WINDOW", 50_000, minimum=1)
# Retention: finished runs older than this many days are purged every day (tasks, the run and its
# log); 0 keeps history forever. Failed runs may be kept longer (0: same as the others). Active
# runs and the latest run of each job are never purged. `manage.py purge_history` does the same.
JTB_PURGE_OLDER_THAN_DAYS = env_int("JTB_PURGE_OLDER_THAN_DAYS", 0, minimum=0)
JTB_PURGE_KEEP_FAILED_DAYS = env_int("JTB_PURGE_KEEP_FAILED_DAYS", 0, minimum=0)
if JTB_PURGE_KEEP_FAILED_DAYS and JTB_PURGE_KEEP_FAILED_DAYS < JTB_PURGE_OLDER_THAN_DAYS:
    raise ImproperlyConfigured("JTB_PURGE_KEEP_FAILED_DAYS must be 0 or at least JTB_PURGE_OLDER_THAN_DAYS")
# Runs deleted per transaction: small, so no lock is held for long and runners keep writing.
JTB_PURGE_BATCH = env_int("JTB_PURGE_BATCH", 500, minimum=1)
# Also delete the CloudWatch log streams of purged AWS Batch runs (needs logs:DeleteLogStream).
JTB_PURGE_CLOUDWATCH_LOGS = env_bool("JTB_PURGE_CLOUDWATCH_LOGS", False)
# The UTC hour at which beat sends the daily purge (at minute 17).
JTB_PURGE_HOUR_UTC = env_int("JTB_PURGE_HOUR_UTC", 3, minimum=0)
if JTB_PURGE_HOUR_UTC > 23:
    raise ImproperlyConfigured("JTB_PURGE_HOUR_UTC must be from 0 to 23")

# --- Alerts, metrics, health (alerts/, monitoring/) ---------------------------------------------
# Alerts of one job and event raised within this many seconds go out as one message (a storm of
# failures makes one message); the first alert waits this long before it is sent. 0 sends at once.
JTB_ALERT_GROUP_SECONDS = env_int("JTB_ALERT_GROUP_SECONDS", 30, minimum=0)
# Defaults for jobs without their own alert thresholds (admin: Alert thresholds):
# a run queued, held or waiting for capacity longer than this raises "waiting";
JTB_ALERT_WAITING_SECONDS = env_int("JTB_ALERT_WAITING_SECONDS", 3600, minimum=1)
# a run longer than this factor × the p95 of the job's last 30 successful runs raises "slow"
# (0 turns it off), once the job has JTB_ALERT_SLOW_MIN_RUNS of them and never under
# JTB_ALERT_SLOW_MIN_SECONDS;
JTB_ALERT_SLOW_P95_FACTOR = env_decimal("JTB_ALERT_SLOW_P95_FACTOR", Decimal("3"))
if JTB_ALERT_SLOW_P95_FACTOR < 0:
    raise ImproperlyConfigured("JTB_ALERT_SLOW_P95_FACTOR must be 0 (off) or more")
JTB_ALERT_SLOW_MIN_RUNS = env_int("JTB_ALERT_SLOW_MIN_RUNS", 10, minimum=1)
JTB_ALERT_SLOW_MIN_SECONDS = env_int("JTB_ALERT_SLOW_MIN_SECONDS", 60, minimum=0)
# this many failures in a row raise "failures in a row" (once per streak).
JTB_ALERT_FAILURES_IN_ROW = env_int("JTB_ALERT_FAILURES_IN_ROW", 3, minimum=2)
# A beat schedule whose next tick is this many seconds overdue raises "schedule did not fire".
JTB_ALERT_SCHEDULE_LATE_SECONDS = env_int("JTB_ALERT_SCHEDULE_LATE_SECONDS", 300, minimum=1)
# Sending: HTTP timeout, attempts in all, and the wait after a failed attempt (doubling, capped).
JTB_ALERT_HTTP_TIMEOUT_SECONDS = env_int("JTB_ALERT_HTTP_TIMEOUT_SECONDS", 10, minimum=1)
JTB_ALERT_DELIVERY_ATTEMPTS = env_int("JTB_ALERT_DELIVERY_ATTEMPTS", 6, minimum=1)
JTB_ALERT_RETRY_BASE_SECONDS = env_int("JTB_ALERT_RETRY_BASE_SECONDS", 10, minimum=1)
JTB_ALERT_RETRY_MAX_SECONDS = env_int("JTB_ALERT_RETRY_MAX_SECONDS", 3600, minimum=1)
# A retry this many seconds overdue was lost with its worker: the sweeper sends it again.
JTB_ALERT_LOST_RETRY_SECONDS = env_int("JTB_ALERT_LOST_RETRY_SECONDS", 300, minimum=30)
# Failures from the last this many seconds whose alert was never raised (the runner died right
# after recording the failure) are alerted by the periodic check.
JTB_ALERT_CATCH_UP_SECONDS = env_int("JTB_ALERT_CATCH_UP_SECONDS", 900, minimum=60)
JTB_ALERT_CHECK_SECONDS = env_int("JTB_ALERT_CHECK_SECONDS", 30, minimum=1)
JTB_ALERT_SEND_SECONDS = env_int("JTB_ALERT_SEND_SECONDS", 5, minimum=1)
# /metrics: a scrape must carry "Authorization: Bearer <token>" when a token is set, and come
# from one of these networks (CIDR) when a list is set. Neither set: loopback only.
JTB_METRICS_TOKEN = env_str("JTB_METRICS_TOKEN")
JTB_METRICS_ALLOWED_NETWORKS = env_list(
    "JTB_METRICS_ALLOWED_NETWORKS", [] if JTB_METRICS_TOKEN else ["127.0.0.0/8", "::1/128"]
)
for _network in JTB_METRICS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"JTB_METRICS_ALLOWED_NETWORKS: {_network!r} is not a network, e.g. 10.0.0.0/8") from None
# /readyz gives each check (database, broker, AWS Batch job queue) this long.
JTB_READYZ_TIMEOUT_SECONDS = env_int("JTB_READYZ_TIMEOUT_SECONDS", 3, minimum=1)


def beat_schedule() -> dict[str, dict]:
    """Every periodic task, in one place. Each entry's task is safe to run twice; `expires` drops
    ticks that piled up while no worker ran them."""
    def every(task: str, seconds: float, *, expires: bool = False) -> dict:
        entry = {"task": task, "schedule": float(seconds)}
        if expires:
            entry["options"] = {"expires": float(seconds)}
        return entry

    schedule = {
        "jtb-schedules-tick": every("jobs.tasks.schedules_tick", JTB_SCHEDULE_TICK_SECONDS, expires=True),
        "jtb-finalize-processes": every("processes.tasks.finalize_pending_processes", JTB_FINALIZE_SECONDS,
                                        expires=True),
        "jtb-reap-lost-processes": every("processes.tasks.reap_lost_processes", 60),
        "jtb-sweep-stuck-processes": every("processes.tasks.sweep_stuck_processes", 60, expires=True),
        "jtb-expire-idempotency-records": every("processes.tasks.expire_idempotency_records", 3600, expires=True),
        # The tracker: Batch job states of active runs, lost submissions, runs stuck waiting for capacity.
        "jtb-track-batch-jobs": every("runner.tasks.track_batch_jobs", JTB_BATCH_TRACK_SECONDS),
        # Alerts: slow and waiting runs, missed schedules; then the messages whose grouping window closed.
        "jtb-alerts-check": every("alerts.tasks.check_alerts", JTB_ALERT_CHECK_SECONDS, expires=True),
        "jtb-alerts-send-due": every("alerts.tasks.send_due_deliveries", JTB_ALERT_SEND_SECONDS, expires=True),
    }
    if JTB_BATCH_EVENTS_QUEUE_URL:
        schedule["jtb-consume-batch-events"] = every(
            "runner.tasks.consume_batch_events", JTB_BATCH_EVENTS_SECONDS, expires=True
        )
    if JTB_SCHEDULER_SYNC_SECONDS:
        schedule["jtb-schedules-sync"] = every("jobs.tasks.schedules_sync_all", JTB_SCHEDULER_SYNC_SECONDS)
    if JTB_PURGE_OLDER_THAN_DAYS:
        from celery.schedules import crontab

        # Daily retention purge (processes.retention); one missed for a whole day is done by the next.
        schedule["jtb-purge-history"] = {
            "task": "processes.tasks.purge_history",
            "schedule": crontab(minute=17, hour=JTB_PURGE_HOUR_UTC),
            "options": {"expires": 23 * 3600.0},
        }
    return schedule


CELERY_BEAT_SCHEDULE = beat_schedule()


# --- Security: HTTPS, login lockout, caches (issue 11; docs/security.md) ----------------------------
# JTB_HTTPS=true turns every HTTPS-only setting on at once (behind TLS in production); each one can
# still be set on its own. `manage.py check --deploy` is clean with the environment in docs/security.md.
_HTTPS = env_bool("JTB_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _HTTPS)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _HTTPS)
# A TLS-terminating proxy tells the app a request came over HTTPS with a header, e.g.
# SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https". Only set it when the proxy overwrites that header.
_proxy_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_header:
    _name, _, _value = _proxy_header.partition(":")
    if not _name.strip() or not _value.strip():
        raise ImproperlyConfigured(f"SECURE_PROXY_SSL_HEADER must read 'Header-Name: value', got {_proxy_header!r}")
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# One cache shared by every process, so throttles count across web workers (e.g. redis://host:6379/1);
# empty: each process counts on its own (fine for one process, as `make run` starts).
_cache_url = env_str("JTB_CACHE_URL")
if _cache_url and not _cache_url.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"JTB_CACHE_URL must be a redis:// URL, got {_cache_url.split('@')[-1]!r}")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache_url}
    if _cache_url else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# Admin login lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from
# one address, sign-in is refused for the cool-off time with 429 and Retry-After, even with the right password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("JTB_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("JTB_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "jobtarget_batch.lockout.lockout_response"
AXES_VERBOSE = False
# Behind a proxy, the client address comes from X-Forwarded-For (count of trusted proxies in front).
AXES_IPWARE_PROXY_COUNT = env_int("JTB_TRUSTED_PROXY_COUNT", 0, minimum=0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

