"""What the job forms in the admin check beyond the model, so mistakes are caught at save.

- Numeric limits: one message per field, the same whichever limit is crossed (and the browser's
  own range check is switched off, so it cannot show a different one first).
- A local template that does not exist is refused, without naming the server's folders.
- An EventBridge schedule is refused while AWS is not configured for it.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from jobs.models import ScheduleDriver

NUMERIC_ERROR_CODES = ("invalid", "min_value", "max_value", "max_digits", "max_decimal_places", "max_whole_digits")


def _number(value) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return f"{value}"


def numeric_limits(model_field: models.Field) -> tuple:
    """The smallest and largest value the model field accepts (validators, database range, digits)."""
    lows = [v.limit_value for v in model_field.validators if isinstance(v, MinValueValidator)]
    highs = [v.limit_value for v in model_field.validators if isinstance(v, MaxValueValidator)]
    if isinstance(model_field, (models.PositiveIntegerField, models.PositiveSmallIntegerField,
                                models.PositiveBigIntegerField)):
        lows.append(0)
    if isinstance(model_field, models.DecimalField):
        whole = model_field.max_digits - model_field.decimal_places
        highs.append(Decimal(10) ** whole - Decimal(10) ** -model_field.decimal_places)
    return (max(lows) if lows else None), (min(highs) if highs else None)


def numeric_limit_message(model_field: models.Field) -> str:
    low, high = numeric_limits(model_field)
    label = str(model_field.verbose_name)
    if not label[1:2].isupper():  # "vCPUs" stays as it is, "memory (MiB)" gets its capital
        label = label[:1].upper() + label[1:]
    if isinstance(model_field, models.DecimalField):
        kind = f"a number with at most {model_field.decimal_places} decimals"
    else:
        kind = "a whole number"
    if low is not None and high is not None:
        return f"{label} must be {kind} from {_number(low)} to {_number(high)}."
    if low is not None:
        return f"{label} must be {kind} of at least {_number(low)}."
    return f"{label} must be {kind}."


def numeric_fields_use_one_message(form: forms.ModelForm) -> None:
    """Give every number field of the form one message for all its limits (form and model checks)."""
    for name, field in form.fields.items():
        try:
            model_field = form._meta.model._meta.get_field(name)
        except Exception:
            continue
        if not isinstance(model_field, (models.IntegerField, models.DecimalField)):
            continue
        message = numeric_limit_message(model_field)
        field.error_messages.update(dict.fromkeys(NUMERIC_ERROR_CODES, message))
        for attr in ("min", "max"):
            field.widget.attrs.pop(attr, None)
        field.widget.attrs["step"] = "any"
        if not field.help_text.endswith(message):
            field.help_text = f"{field.help_text} {message}".strip()


def template_must_exist(template: str) -> None:
    """Refuse a local template path with no file behind it. S3 templates are not fetched here (the
    admin's save runs in a transaction, where no network call belongs); the admin warns instead."""
    from runner.template_source import TemplateFetchError, local_template_path

    if template.startswith("s3://"):
        return
    try:
        exists = local_template_path(template).is_file()
    except TemplateFetchError:
        exists = False
    if not exists:
        raise ValidationError(
            f"There is no template {template} in the template folder. Check the spelling, or upload the "
            "file with \"Upload a file\" beside this field.",
            code="template_missing",
        )


def eventbridge_must_be_configured(driver: str) -> None:
    if driver == ScheduleDriver.EVENTBRIDGE and not settings.JTB_SCHEDULER_ROLE_ARN:
        raise ValidationError(
            "EventBridge Scheduler is not set up on this server (JTB_SCHEDULER_ROLE_ARN is empty). Choose "
            "Celery beat, or ask an administrator to configure AWS first.",
            code="eventbridge_not_configured",
        )


class TemplateInput(forms.TextInput):
    """The template path, with a file picker beside it: choosing a file uploads it at once (the
    console script posts it to the upload page) and fills in the path, on the Add form too."""

    def __init__(self, *, upload_url: str, attrs=None):
        super().__init__(attrs={"size": 60, **(attrs or {})})
        self.upload_url = upload_url

    def render(self, name, value, attrs=None, renderer=None):
        from django.utils.html import format_html

        field = super().render(name, value, attrs, renderer)
        return format_html(
            '{}<span class="jtb-upload"><label>Upload a file: <input type="file" accept=".py,text/x-python" '
            'class="jtb-template-file" data-upload-url="{}" data-target="{}"></label>'
            '<span class="jtb-upload-status" aria-live="polite"></span></span>',
            field, self.upload_url, (attrs or {}).get("id", f"id_{name}"),
        )


class ScheduleAdminForm(forms.ModelForm):
    """The schedule form of the job page (inline) and of the schedule page."""

    def clean_driver(self):
        driver = self.cleaned_data.get("driver")
        # An existing EventBridge schedule may still be edited or disabled when AWS is gone.
        if "driver" in self.changed_data:
            eventbridge_must_be_configured(driver)
        return driver
