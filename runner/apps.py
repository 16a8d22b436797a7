from django.apps import AppConfig


class RunnerConfig(AppConfig):
    name = "runner"
    verbose_name = "Runner"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from runner import checks, checks_aws  # noqa: F401  (registers system checks)
