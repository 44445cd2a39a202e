"""`manage.py queue [cancel|retry|prioritize ID [N]]`: the queue in the terminal."""

from django.core.management.base import BaseCommand, CommandError

from conversions import selectors, services
from conversions.exceptions import DomainError
from conversions.models import Conversion


class Command(BaseCommand):
    help = "Show the queue (counts, running and next jobs), or cancel, retry or re-prioritise a job."

    def add_arguments(self, parser):
        parser.add_argument("action", nargs="?", choices=["show", "cancel", "retry", "prioritize"], default="show")
        parser.add_argument("conversion_id", nargs="?")
        parser.add_argument("priority", nargs="?", type=int)
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, action, conversion_id, priority, limit, **options):
        if action == "show":
            return self.show(limit)
        if not conversion_id:
            raise CommandError(f"queue {action} needs a conversion id")
        try:
            conversion = selectors.conversion_by_id(conversion_id)
            if action == "cancel":
                conversion = services.cancel_conversion(conversion=conversion)
            elif action == "retry":
                conversion = services.retry_conversion(conversion=conversion)
            else:
                if priority is None:
                    raise CommandError("queue prioritize needs a priority")
                conversion = services.set_priority(conversion=conversion, priority=priority)
        except (Conversion.DoesNotExist, DomainError) as error:
            raise CommandError(getattr(error, "detail", f"Conversion not found: {conversion_id}")) from None
        self.stdout.write(f"{conversion.pk}: {conversion.status}, priority {conversion.priority}")

    def show(self, limit: int) -> None:
        counts = selectors.queue_counts()
        self.stdout.write(
            f"queued {counts['queued']}  running {counts['running']}  workers {selectors.live_worker_count()}"
        )
        running = Conversion.objects.filter(status="running").select_related("document").order_by("started_at")
        for conversion in running[:limit]:
            self.stdout.write(
                f"  running  {conversion.pk}  {conversion.progress:3d}%  "
                f"{conversion.pages_done}/{conversion.pages_total}  {conversion.worker_id}  "
                f"{conversion.document.filename}"
            )
        waiting = (
            Conversion.objects.filter(status="queued").select_related("document").order_by("-priority", "created_at")
        )
        for conversion in waiting[:limit]:
            self.stdout.write(f"  queued   {conversion.pk}  p={conversion.priority}  {conversion.document.filename}")
