"""Fixtures for API tests: users with chosen permissions, token clients, and jobs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

PASSWORD = "a-Long-passw0rd"
VIEW_PERMS = ("jobs.view_job", "jobs.view_schedule", "processes.view_process")


def grant(user: User, *perms: str) -> User:
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)  # drop the permission cache


@pytest.fixture
def make_user(db):
    def make(username: str, *perms: str, superuser: bool = False) -> User:
        user = User.objects.create_user(username, password=PASSWORD, is_staff=True, is_superuser=superuser)
        return grant(user, *perms)

    return make


def token_client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def admin_user(make_user) -> User:
    return make_user("admin", superuser=True)


@pytest.fixture
def api(admin_user) -> APIClient:
    """A client authenticated as a superuser with a token."""
    return token_client(admin_user)




@pytest.fixture
def dispatches(monkeypatch, django_capture_on_commit_callbacks):
    """`with dispatches() as sent:` runs on-commit callbacks and records each dispatch message's ids."""
    from contextlib import contextmanager

    from processes.tasks import submit_processes

    @contextmanager
    def capture():
        sent: list[list[int]] = []
        monkeypatch.setattr(submit_processes, "delay", lambda ids: sent.append(list(ids)))
        with django_capture_on_commit_callbacks(execute=True):
            yield sent
        monkeypatch.undo()

    return capture


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The token exchange checks passwords on every call; the default hasher costs ~0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
