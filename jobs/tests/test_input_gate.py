"""The one input gate and the environment-name allow-list, as pure functions."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from jobs.input_gate import MAX_JSON_DEPTH, input_problem, validate_input
from jobs.validation import validate_environment, validate_template


def nested(levels: int):
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(("value", "path"), [
    ("a\x00b", ""), ("\udc00", ""), ({"k": ["ok", "\ud800x"]}, "k.1"), ({"a": {"b\x00": 1}}, "a"),
    ({"k": nested(MAX_JSON_DEPTH + 5)}, "k" + ".0" * MAX_JSON_DEPTH),
])
def test_nul_lone_surrogates_and_deep_nesting_are_found_with_where(value, path):
    found = input_problem(value)

    assert found is not None and found[0] == path


def test_valid_unicode_including_astral_characters_passes():
    assert input_problem({"emoji": "😀 ✓ é", "list": nested(MAX_JSON_DEPTH - 1)}) is None


def test_a_million_levels_cost_no_python_stack():
    value: list = []
    for _ in range(1_000_000):
        value = [value]

    assert input_problem(value)[1].startswith("JSON may be nested")


def test_validate_input_names_the_value_in_its_message():
    with pytest.raises(ValidationError, match="Parameters \\(at a\\): Text may not contain lone"):
        validate_input({"a": "\udfff"}, what="Parameters")


@pytest.mark.parametrize("name", [
    "LD_AUDIT", "LD_PRELOAD", "ld_library_path", "GCONV_PATH", "PYTHONSTARTUP", "PYTHONPATH", "pythonwarnings",
    "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "no_proxy", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_SHARED_CREDENTIALS_FILE", "JTB_PROCESS_ID", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "PATH",
    "BASH_ENV", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL", "UV_INDEX_URL", "GLIBC_TUNABLES",
])
def test_dangerous_environment_names_are_refused_in_any_case(name):
    with pytest.raises(ValidationError, match="cannot be overridden"):
        validate_environment({name: "x"})


@pytest.mark.parametrize("name", ["REGION", "AWS_REGION", "AWS_DEFAULT_REGION", "REPORT_DAYS", "_private", "proxy_mode"])
def test_ordinary_environment_names_are_allowed(name):
    assert validate_environment({name: "x"}) == {name: "x"}


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "Ä", ""])
def test_names_outside_the_allowed_pattern_are_refused(name):
    with pytest.raises(ValidationError, match="not a valid environment variable name"):
        validate_environment({name: "x"})


def test_s3_templates_are_refused_until_buckets_are_allowed(settings):
    settings.JTB_TEMPLATE_BUCKETS = []
    with pytest.raises(ValidationError, match="JTB_TEMPLATE_BUCKETS"):
        validate_template("s3://any-bucket/x.py")
    settings.JTB_TEMPLATE_BUCKETS = ["jtb-templates"]
    with pytest.raises(ValidationError, match="not one templates may come from"):
        validate_template("s3://any-bucket/x.py")
    assert validate_template("s3://jtb-templates/x.py") == "s3://jtb-templates/x.py"


def test_a_missing_local_template_does_not_show_the_servers_folder(settings, tmp_path):
    from runner.template_source import TemplateFetchError, template_fetch

    settings.JTB_TEMPLATE_ROOT = tmp_path / "srv-templates"
    settings.JTB_TEMPLATE_ROOT.mkdir()
    with pytest.raises(TemplateFetchError) as error:
        template_fetch("reports/missing.py")

    assert "reports/missing.py does not exist" in str(error.value)
    assert str(tmp_path) not in str(error.value)
