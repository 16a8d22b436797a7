# JobTarget Batch: one image for the web server, the Celery worker, beat and the AWS Batch runner.
#   docker build -t jobtarget-batch .
#   docker run jobtarget-batch web | worker | beat | migrate | batch_sync | run_process <id>
# See docs/aws.md for running it on AWS.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    JTB_DATA_DIR=/var/lib/jtb \
    JTB_ENV_ROOT=/var/lib/jtb/envs \
    JTB_WORK_DIR=/tmp/jtb-work \
    JTB_LOG_DIR=/var/lib/jtb/logs \
    JTB_TEMPLATE_USER=jtb-job \
    STATIC_ROOT=/app/staticfiles

# tini reaps the template's orphans and forwards SIGTERM (Batch cancel) to the runner. libodbc2:
# mssql-django imports pyodbc even when it talks to SQL Server through mssql-python.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini ca-certificates libodbc2 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# uv from requirements.txt itself (pinned there); it also builds job environments at run time.
RUN python -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir "$(grep -i '^uv==' requirements.txt)" \
    && uv pip install --python "$VIRTUAL_ENV/bin/python" --no-cache -r requirements.txt

COPY . .
RUN python -m compileall -q jobtarget_batch jobs processes runner \
    && DJANGO_SETTINGS_MODULE=jobtarget_batch.settings SECRET_KEY=build-only STATIC_ROOT=/app/staticfiles \
       python manage.py collectstatic --no-input \
    && useradd --system --uid 10001 --home-dir /var/lib/jtb --create-home jtb \
    && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin jtb-job \
    && mkdir -p /var/lib/jtb/envs /var/lib/jtb/logs \
    && chown -R jtb:jtb /var/lib/jtb

USER jtb
EXPOSE 8000
ENTRYPOINT ["tini", "--", "python", "-m", "runner.aws.entrypoint"]
CMD ["web"]
