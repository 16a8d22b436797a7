"""System checks: settings AWS would refuse, caught when the app starts instead of at the first
schedule sync or submission (ids jobtarget_batch.E140-E149 belong to this module)."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from jobs import aws_limits

# Each bounded setting keeps its own check id.
BOUNDED_SETTINGS = {
    "JTB_SCHEDULER_MAX_EVENT_AGE_SECONDS": "jobtarget_batch.E140",
    "JTB_BATCH_SUBMITS_PER_SECOND": "jobtarget_batch.E141",
    "JTB_SCHEDULER_GROUP": "jobtarget_batch.E142",
    "JTB_SCHEDULER_NAME_PREFIX": "jobtarget_batch.E143",
    "JTB_BATCH_NAME_PREFIX": "jobtarget_batch.E144",
}


@register()
def check_aws_limits(app_configs, **kwargs):
    values = {name: getattr(settings, name) for name in BOUNDED_SETTINGS if hasattr(settings, name)}
    problems = [
        Error(f"{name} {message}", hint="Change the environment variable and restart.", id=BOUNDED_SETTINGS[name])
        for name, message in aws_limits.aws_setting_errors(values).items()
    ]
    rate_warning = aws_limits.submits_per_second_warning(getattr(settings, "JTB_BATCH_SUBMITS_PER_SECOND", 1))
    if rate_warning:
        problems.append(Warning(rate_warning, hint="Divide 50 among the worker processes that dispatch.",
                                id="jobtarget_batch.W140"))
    zone = getattr(settings, "JTB_SCHEDULE_DEFAULT_TIMEZONE", "UTC")
    if not aws_limits.is_iana_zone(zone):
        problems.append(Error(
            f"JTB_SCHEDULE_DEFAULT_TIMEZONE {zone!r} is not an IANA time zone.",
            hint="Use a name such as Europe/London or UTC.", id="jobtarget_batch.E149",
        ))
    return problems
