import pytest
from django.core.exceptions import ValidationError

from jobs.validation import validate_python_modules, validate_template


@pytest.mark.parametrize(
    "bad",
    [
        "--index-url http://x",
        "-e git+https://github.com/x/y",
        "pkg @ https://x/y.whl",
        "-r /etc/passwd",
        "pkg; rm -rf /",
        "requests\nsix",
        "",
        "./local/path",
        "/abs/path",
    ],
)
def test_module_lines_that_are_not_plain_requirements_are_refused(bad):
    with pytest.raises(ValidationError):
        validate_python_modules([bad])


def test_plain_requirements_with_extras_versions_and_markers_are_accepted():
    assert validate_python_modules(["requests[socks]>=2.31", "six; python_version >= '3.8'"]) == [
        "requests[socks]>=2.31",
        'six; python_version >= "3.8"',
    ]


@pytest.mark.parametrize(
    "bad", ["../etc/passwd.py", "a/../../b.py", "/etc/x.py", "http://x/y.py", "file:///etc/passwd", "x.txt",
            "s3://BAD_BUCKET/x.py", "s3://bucket/", "s3://bucket/x.py?foo=1", "ftp://x/y.py"],
)
def test_bad_templates_are_refused(bad):
    with pytest.raises(ValidationError):
        validate_template(bad)


def test_good_templates_are_accepted(settings):
    settings.JTB_TEMPLATE_BUCKETS = ["my-bucket"]
    assert validate_template("examples/hello.py") == "examples/hello.py"
    assert validate_template("s3://my-bucket/jobs/r.py?versionId=abc") == "s3://my-bucket/jobs/r.py?versionId=abc"


def test_json_with_nul_characters_is_refused_before_the_database_sees_it():
    from jobs.validation import validate_environment, validate_json_object

    with pytest.raises(ValidationError, match="NUL"):
        validate_json_object({"a": ["ok", "bad\0"]}, what="Parameters")
    with pytest.raises(ValidationError):
        validate_environment({"NAME": "x\0y"})
