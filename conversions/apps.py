from django.apps import AppConfig


class ConversionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversions"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        post_spawn.connect(install_graceful_shutdown, dispatch_uid="dotsocr-graceful-shutdown")


def install_graceful_shutdown(sender, proc_name, **kwargs) -> None:
    """Runs in each new django-q2 worker process (see workers/shutdown.py)."""
    from workers import shutdown

    shutdown.install()
