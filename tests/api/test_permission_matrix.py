"""One permission rule in the admin and the API (jobs.permissions): every role against every admin
page, action, button and API endpoint that reads or runs jobs, and who sees environment values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from jobs.models import Job
from processes.models import Process, ProcessStatus, Trigger
from tests.api.conftest import VIEW_PERMS, token_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_dispatch")]

RUN = "jobs.run_job"
EDIT = ("jobs.add_job", "jobs.change_job", "jobs.add_schedule", "jobs.change_schedule")
ROLES = {
    "anonymous": None,
    "nobody": (),
    "viewer": VIEW_PERMS,
    "run-only": (RUN,),
    "operator": (*VIEW_PERMS, RUN),
    "editor": (*VIEW_PERMS, *EDIT),
}
PLAIN_VALUE = "eu-west-plain"
SECRET_VALUE = "hunter2-secret"


@dataclass
class World:
    job: Job
    failed: Process
    running: Process
    admin: Client
    api: APIClient


@pytest.fixture
def world_for(make_user, make_job):
    def build(role: str) -> World:
        job = make_job(name="payroll", environment={"REGION": PLAIN_VALUE, "DB_PASSWORD": SECRET_VALUE})
        failed = Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.FAILED, executor="local")
        running = Process.objects.create(job=job, trigger=Trigger.MANUAL, status=ProcessStatus.RUNNING,
                                         executor="local")
        admin, api = Client(), APIClient()
        if ROLES[role] is not None:
            user = make_user(role, *ROLES[role])
            admin.force_login(user)
            api = token_client(user)
        return World(job=job, failed=failed, running=running, admin=admin, api=api)

    return build


def runs_started(world: World) -> int:
    return Process.objects.exclude(pk__in=[world.failed.pk, world.running.pk]).count()


def cancel_asked(world: World) -> bool:
    world.running.refresh_from_db()
    return world.running.cancel_requested_at is not None or world.running.status == ProcessStatus.CANCELLED


def page_ok(response) -> bool:
    return response.status_code == 200


# name -> (who may, do it, did it happen?)
Check = tuple[set[str], Callable[[World], object], Callable[[World, object], bool]]
OPERATIONS: dict[str, Check] = {
    # --- admin pages, actions and buttons ---
    "admin job list": ({"viewer", "operator", "editor"},
                       lambda w: w.admin.get(reverse("admin:jobs_job_changelist")), lambda w, r: page_ok(r)),
    "admin job page": ({"viewer", "operator", "editor"},
                       lambda w: w.admin.get(reverse("admin:jobs_job_change", args=[w.job.pk])),
                       lambda w, r: page_ok(r)),
    "admin run page": ({"operator"}, lambda w: w.admin.get(reverse("admin:jobs_job_run", args=[w.job.pk])),
                       lambda w, r: page_ok(r) and b"examples/hello.py" in r.content),
    "admin run page submit": ({"operator"},
                              lambda w: w.admin.post(reverse("admin:jobs_job_run", args=[w.job.pk]), {"parameters": "{}"}),
                              lambda w, r: runs_started(w) == 1),
    "admin run now action": ({"operator"}, lambda w: w.admin.post(
        reverse("admin:jobs_job_changelist"), {"action": "run_now", "_selected_action": [w.job.pk]}),
        lambda w, r: runs_started(w) == 1),
    "admin run now button": ({"operator"},
                             lambda w: w.admin.get(reverse("admin:jobs_job_change", args=[w.job.pk])),
                             lambda w, r: page_ok(r) and b'class="runlink"' in r.content),
    "admin upload button": ({"editor"}, lambda w: w.admin.get(reverse("admin:jobs_job_change", args=[w.job.pk])),
                            lambda w, r: page_ok(r) and b'class="uploadlink"' in r.content),
    "admin process page": ({"viewer", "operator", "editor"},
                           lambda w: w.admin.get(reverse("admin:processes_process_change", args=[w.failed.pk])),
                           lambda w, r: page_ok(r)),
    "admin rerun button": ({"operator"},
                           lambda w: w.admin.get(reverse("admin:processes_process_change", args=[w.failed.pk])),
                           lambda w, r: page_ok(r) and b'id="rerun-button"' in r.content),
    "admin cancel button": ({"operator"},
                            lambda w: w.admin.get(reverse("admin:processes_process_change", args=[w.running.pk])),
                            lambda w, r: page_ok(r) and b'id="cancel-button"' in r.content),
    "admin rerun": ({"operator"}, lambda w: w.admin.post(reverse("admin:processes_process_rerun", args=[w.failed.pk])),
                    lambda w, r: runs_started(w) == 1),
    "admin cancel": ({"operator"},
                     lambda w: w.admin.post(reverse("admin:processes_process_cancel", args=[w.running.pk])),
                     lambda w, r: cancel_asked(w)),
    "admin rerun action": ({"operator"}, lambda w: w.admin.post(
        reverse("admin:processes_process_changelist"), {"action": "rerun", "_selected_action": [w.failed.pk]}),
        lambda w, r: runs_started(w) == 1),
    "admin cancel action": ({"operator"}, lambda w: w.admin.post(
        reverse("admin:processes_process_changelist"), {"action": "cancel", "_selected_action": [w.running.pk]}),
        lambda w, r: cancel_asked(w)),
    "admin environment values": ({"editor"},
                                 lambda w: w.admin.get(reverse("admin:jobs_job_change", args=[w.job.pk])),
                                 lambda w, r: PLAIN_VALUE.encode() in r.content),
    # --- API ---
    "api job list": ({"viewer", "operator", "editor"}, lambda w: w.api.get("/api/v1/jobs/"), lambda w, r: page_ok(r)),
    "api job detail": ({"viewer", "operator", "editor"}, lambda w: w.api.get(f"/api/v1/jobs/{w.job.pk}/"),
                       lambda w, r: page_ok(r)),
    "api job history": ({"viewer", "operator", "editor"}, lambda w: w.api.get(f"/api/v1/jobs/{w.job.pk}/history/"),
                        lambda w, r: page_ok(r)),
    "api run": ({"operator"}, lambda w: w.api.post(f"/api/v1/jobs/{w.job.pk}/run/", {}),
                lambda w, r: r.status_code == 202 and runs_started(w) == 1),
    "api bulk runs": ({"run-only", "operator"}, lambda w: w.api.post("/api/v1/runs/", {"runs": [{"job": w.job.pk}]}),
                      lambda w, r: r.status_code == 202 and runs_started(w) == 1),
    "api rerun": ({"operator"}, lambda w: w.api.post(f"/api/v1/processes/{w.failed.pk}/rerun/"),
                  lambda w, r: r.status_code == 202 and runs_started(w) == 1),
    "api cancel": ({"operator"}, lambda w: w.api.post(f"/api/v1/processes/{w.running.pk}/cancel/"),
                   lambda w, r: r.status_code == 202 and cancel_asked(w)),
    "api edit job": ({"editor"}, lambda w: w.api.patch(f"/api/v1/jobs/{w.job.pk}/", {"description": "edited"}),
                     lambda w, r: Job.objects.filter(pk=w.job.pk, description="edited").exists()),
    "api environment values": ({"editor"}, lambda w: w.api.get(f"/api/v1/jobs/{w.job.pk}/"),
                               lambda w, r: page_ok(r) and r.json()["environment"]["REGION"] == PLAIN_VALUE),
    "api environment in lists": ({"editor"}, lambda w: w.api.get("/api/v1/jobs/"),
                                 lambda w, r: page_ok(r) and PLAIN_VALUE in r.content.decode()),
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_role_may_do_exactly_what_the_matrix_says(world_for, role, operation):
    allowed, act, happened = OPERATIONS[operation]
    world = world_for(role)

    response = act(world)

    assert happened(world, response) is (role in allowed), (role, operation, getattr(response, "status_code", None))
    # Nobody, not even an editor, ever gets a secret-named value back.
    assert SECRET_VALUE.encode() not in getattr(response, "content", b"")
    if role not in allowed and operation.startswith("api"):
        assert response.status_code in (401, 403) or "environment" in operation


@pytest.mark.parametrize("role", ["run-only", "nobody"])
def test_users_without_view_permission_are_refused_the_run_page_rerun_and_cancel(world_for, role):
    world = world_for(role)

    responses = [
        world.admin.get(reverse("admin:jobs_job_run", args=[world.job.pk])),
        world.admin.post(reverse("admin:processes_process_rerun", args=[world.failed.pk])),
        world.admin.post(reverse("admin:processes_process_cancel", args=[world.running.pk])),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403]
    assert runs_started(world) == 0 and not cancel_asked(world)


def test_anonymous_admin_requests_go_to_the_login_page(world_for):
    world = world_for("anonymous")

    response = world.admin.get(reverse("admin:jobs_job_run", args=[world.job.pk]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_editor_saving_the_masked_form_keeps_the_secret_value(world_for):
    world = world_for("editor")
    page = world.admin.get(reverse("admin:jobs_job_change", args=[world.job.pk]))
    form = page.context["adminform"].form
    environment = form["environment"].value()
    assert SECRET_VALUE not in environment and "********" in environment

    response = world.api.patch(f"/api/v1/jobs/{world.job.pk}/", {"environment": {
        "REGION": "us-east-1", "DB_PASSWORD": "********"}})

    assert response.status_code == 200
    world.job.refresh_from_db()
    assert world.job.environment == {"REGION": "us-east-1", "DB_PASSWORD": SECRET_VALUE}


@pytest.mark.parametrize(("role", "plain_shown"), [("viewer", False), ("operator", False), ("editor", True)])
def test_the_process_page_masks_the_environment_the_run_used_like_the_job_page(world_for, role, plain_shown):
    world = world_for(role)
    Process.objects.filter(pk=world.failed.pk).update(
        snapshot={"template": "examples/hello.py", "environment": {"REGION": PLAIN_VALUE, "DB_PASSWORD": SECRET_VALUE}}
    )

    page = world.admin.get(reverse("admin:processes_process_change", args=[world.failed.pk]))

    assert page.status_code == 200 and b"examples/hello.py" in page.content
    assert (PLAIN_VALUE.encode() in page.content) is plain_shown
    assert SECRET_VALUE.encode() not in page.content
