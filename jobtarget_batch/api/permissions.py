"""Who may do what: Django model permissions (reads need `view_*`), and `jobs.run_job` to run."""

from __future__ import annotations

from rest_framework import permissions

from jobs.permissions import user_may_run_jobs


class ModelPermissions(permissions.DjangoModelPermissions):
    """Model permissions where reads need `view_<model>` too, so writers and readers are separate."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class CanRunJobs(permissions.BasePermission):
    """Run, rerun and cancel (`jobs.run_job`, on Job.Meta.permissions)."""

    message = "You need the \"Can run, rerun and cancel runs of jobs\" permission."

    def has_permission(self, request, view) -> bool:
        # The same rule the admin's Run now, Rerun and Cancel check (jobs.permissions).
        return user_may_run_jobs(request.user)


class CanView(permissions.DjangoModelPermissions):
    """`view_<model>` whatever the method: for actions that act on an object without editing it."""

    def get_required_permissions(self, method, model_cls):
        return [f"{model_cls._meta.app_label}.view_{model_cls._meta.model_name}"]
