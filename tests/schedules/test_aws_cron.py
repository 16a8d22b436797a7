"""Unix cron (what users write) to EventBridge Scheduler cron: the conversion table and refusals."""

import pytest
from django.core.exceptions import ValidationError

from jobs.scheduling.aws_cron import unix_to_aws_cron

CONVERSIONS = [
    # every minute, and `*` in both day fields: day-of-week becomes `?`
    ("* * * * *", "cron(* * * * ? *)"),
    # steps start at the field's first value
    ("*/15 * * * *", "cron(0/15 * * * ? *)"),
    ("0 */6 * * *", "cron(0 0/6 * * ? *)"),
    ("10/20 * * * *", "cron(10/20 * * * ? *)"),
    # a step inside a range is spelled out
    ("5-20/5 * * * *", "cron(5,10,15,20 * * * ? *)"),
    # lists and ranges
    ("0,30 8-17 * * *", "cron(0,30 8-17 * * ? *)"),
    ("30 1 1,15 * *", "cron(30 1 1,15 * ? *)"),
    ("0 0 1-3,5 * *", "cron(0 0 1-3,5 * ? *)"),
    # month names become numbers
    ("0 9 * JAN,JUL *", "cron(0 9 * 1,7 ? *)"),
    ("0 9 1 jan-mar *", "cron(0 9 1 1-3 ? *)"),
    # day of week: names and numbers, Unix 0-6 from Sunday becomes AWS 1-7 from Sunday
    ("0 9 * * MON-FRI", "cron(0 9 ? * MON-FRI *)"),
    ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
    ("0 12 * * 0", "cron(0 12 ? * SUN *)"),
    ("0 12 * * 7", "cron(0 12 ? * SUN *)"),
    ("0 12 * * 5-7", "cron(0 12 ? * SUN,FRI,SAT *)"),
    ("0 12 * * SAT,SUN", "cron(0 12 ? * SUN,SAT *)"),
    # AWS day of week takes no steps: they are spelled out
    ("0 0 * * */2", "cron(0 0 ? * SUN,TUE,THU,SAT *)"),
    # a day field that matches every day is no restriction at all
    ("0 0 1-31 * MON", "cron(0 0 * * ? *)"),
    ("0 0 * * 0-6", "cron(0 0 * * ? *)"),
    # macros
    ("@hourly", "cron(0 * * * ? *)"),
    ("@weekly", "cron(0 0 ? * SUN *)"),
]


@pytest.mark.parametrize(("unix", "aws"), CONVERSIONS)
def test_unix_cron_converts_to_the_aws_expression(unix, aws):
    assert unix_to_aws_cron(unix) == aws


REFUSALS = [
    ("0 0 1 * MON", "restricts both the day of month and the day of week"),
    ("0 0 */2 * MON", "restricts both the day of month and the day of week"),
    ("0 0 L * *", "not Unix cron syntax"),
    ("0 0 ? * MON", "not Unix cron syntax"),
    ("0 0 * * MON#2", "not Unix cron syntax"),
    ("*/10 * * * * *", "at most once a minute"),
    ("0 0 31 2 *", "never fires"),
    ("0 22-2 * * *", "runs backwards"),
]


@pytest.mark.parametrize(("unix", "message"), REFUSALS)
def test_expressions_aws_cannot_run_are_refused_with_a_reason(unix, message):
    with pytest.raises(ValidationError) as caught:
        unix_to_aws_cron(unix)
    assert message in " ".join(caught.value.messages)
