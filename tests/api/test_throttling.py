"""Password guessing is slowed and stopped: the token exchange is throttled per address, and
repeated wrong passwords lock a username out of the admin and the API (django-axes) with 429 and
Retry-After, even when the right password comes next."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db
TOKEN = "/api/v1/auth/token/"
LOGIN = "/admin/login/?next=/admin/"


def test_the_token_exchange_answers_429_with_retry_after_past_its_rate(make_user, settings):
    make_user("alice")
    client = APIClient()
    rate = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"].split("/")[0])

    answers = [client.post(TOKEN, {"username": f"guess{i}", "password": "wrong"}).status_code for i in range(rate)]
    throttled = client.post(TOKEN, {"username": "alice", "password": PASSWORD})

    assert answers == [400] * rate
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert throttled.json()["code"] == "throttled" and "token" not in throttled.json()


def test_another_address_is_not_throttled_by_the_first(make_user, settings):
    make_user("alice")
    rate = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["auth"].split("/")[0])
    for i in range(rate + 1):
        APIClient(REMOTE_ADDR="10.0.0.1").post(TOKEN, {"username": f"guess{i}", "password": "wrong"})

    response = APIClient(REMOTE_ADDR="10.0.0.2").post(TOKEN, {"username": "alice", "password": PASSWORD})

    assert response.status_code == 200 and response.json()["token"]


def test_repeated_wrong_admin_passwords_lock_the_user_out_even_with_the_right_one(make_user, settings):
    make_user("alice")
    client = Client()

    wrong = [client.post(LOGIN, {"username": "alice", "password": f"wrong{i}"}).status_code
             for i in range(settings.AXES_FAILURE_LIMIT - 1)]
    locked = client.post(LOGIN, {"username": "alice", "password": "wrong-again"})
    right = client.post(LOGIN, {"username": "alice", "password": PASSWORD})

    assert wrong == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with its error
    assert locked.status_code == 429 and right.status_code == 429
    assert int(right["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert "Too many failed sign-ins" in right.content.decode()
    assert client.get("/admin/").status_code == 302  # still not signed in


def test_a_locked_out_user_gets_429_from_the_token_exchange_too(make_user, settings):
    make_user("alice")
    admin = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        admin.post(LOGIN, {"username": "alice", "password": f"wrong{i}"})

    response = APIClient().post(TOKEN, {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert response.json()["code"] == "locked_out" and int(response["Retry-After"]) > 0


def test_other_users_and_a_right_password_before_the_limit_are_not_locked(make_user, settings):
    make_user("alice")
    make_user("bob")
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": "alice", "password": f"wrong{i}"})

    bob = client.post(LOGIN, {"username": "bob", "password": PASSWORD})

    assert bob.status_code == 302
    assert APIClient().post(TOKEN, {"username": "bob", "password": PASSWORD}).status_code == 200
