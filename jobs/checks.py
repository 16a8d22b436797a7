"""System checks for security settings that would otherwise only show when a job is saved or runs."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register


@register("security")
def check_template_buckets(app_configs, **kwargs):
    """On AWS Batch templates usually come from S3: without JTB_TEMPLATE_BUCKETS none can be saved."""
    if settings.JTB_EXECUTOR == "aws_batch" and not settings.JTB_TEMPLATE_BUCKETS:
        return [Error(
            "JTB_EXECUTOR is aws_batch but JTB_TEMPLATE_BUCKETS is empty: S3 templates are refused until it lists "
            "the buckets templates may come from.",
            hint="Set JTB_TEMPLATE_BUCKETS=my-templates-bucket (comma-separated for several).",
            id="jobtarget_batch.E101",
        )]
    return []


@register("security", deploy=True)
def check_key_file_mode(app_configs, **kwargs):
    """The generated signing key (make run) must be readable by its owner only."""
    key_file = settings.DATA_DIR / "secret_key"
    try:
        mode = key_file.stat().st_mode
    except FileNotFoundError:
        return []
    if mode & 0o077:
        return [Warning(f"{key_file} is readable by other users (mode {oct(mode & 0o777)}).",
                        hint=f"chmod 600 {key_file}", id="jobtarget_batch.W101")]
    return []
