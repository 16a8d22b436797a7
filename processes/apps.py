from django.apps import AppConfig


class ProcessesConfig(AppConfig):
    name = "processes"
    verbose_name = "Runs"
    default_auto_field = "django.db.models.BigAutoField"
