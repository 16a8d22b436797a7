"""System checks for settings that would otherwise fail only when a run starts."""

import os

from django.conf import settings
from django.core.checks import Error, Warning, register

from runner.isolation import template_user_name


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
    if os.geteuid() == 0 and not template_user_name():
        problems.append(Warning(
            "This process runs as root and has no template user (JTB_TEMPLATE_USER unset, no jtb-job user): "
            "templates would run as root, without capabilities but owning root's files.",
            hint="Create an unprivileged user named jtb-job (the image has it) or set JTB_TEMPLATE_USER.",
            id="jobtarget_batch.W010",
        ))
    return problems
