"""System checks for settings that would otherwise fail only when a run starts."""

import os

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_runner_settings(app_configs, **kwargs):
    problems = []
    if not settings.JTB_TEMPLATE_ROOT.is_dir():
        problems.append(Warning(
            f"JTB_TEMPLATE_ROOT {settings.JTB_TEMPLATE_ROOT} is not a folder; local templates cannot be found.",
            id="jobtarget_batch.W001",
        ))
    try:
        from runner.environments import uv_binary

        uv_binary()
    except Exception as exc:
        problems.append(Error(f"uv is needed to build job environments: {exc}", id="jobtarget_batch.E001"))
    if os.geteuid() == 0 and not os.environ.get("JTB_TEMPLATE_USER"):
        problems.append(Warning(
            "This process runs as root and JTB_TEMPLATE_USER is not set: templates would run as root and "
            "could read this host's secrets.",
            hint="Create an unprivileged user (the image has jtb-job) and set JTB_TEMPLATE_USER to it.",
            id="jobtarget_batch.W010",
        ))
    return problems
