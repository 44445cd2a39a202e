"""`manage.py convert FILE... [--engine E] [--prompt-mode M] [--priority N] [--wait | --sync]`"""

import time
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from conversions import selectors, services
from conversions.exceptions import InvalidDocument
from conversions.models import Conversion
from workers import pipeline
from workers.ocr import ENGINES
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES


class Command(BaseCommand):
    help = ("Queue files (PDF, images, Office and text documents) for conversion; --wait follows them with "
            "progress bars, --sync runs them here.")

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--engine", choices=ENGINES, default=settings.OCR_ENGINE)
        parser.add_argument("--prompt-mode", choices=PROMPT_MODES, default=DEFAULT_PROMPT_MODE)
        parser.add_argument("--priority", type=int, default=0)
        parser.add_argument("--wait", action="store_true", help="follow the jobs until they end (needs qcluster)")
        parser.add_argument("--sync", action="store_true", help="run the jobs in this process, no cluster needed")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")

    def handle(self, *args, **options):
        owner = services.default_owner()
        if options["sync"]:
            # Each job runs as soon as it is queued, claimed by its id: never another
            # user's job, whatever the queue holds.
            conversions = []
            for path in options["files"]:
                conversions.append(self.queue(path, owner, options))
                pipeline.run_one(conversions[-1].pk)
        else:
            conversions = [self.queue(path, owner, options) for path in options["files"]]
        if options["wait"] and not options["sync"]:
            self.follow(conversions, options["timeout"])
        self.report([selectors.conversion_by_id(conversion.pk) for conversion in conversions], options)

    def queue(self, path: Path, owner, options) -> Conversion:
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        with open(path, "rb") as handle:
            try:
                document = services.create_document(owner=owner, upload=File(handle, name=path.name),
                                                    max_pages=settings.MAX_PAGES)
            except InvalidDocument as error:
                raise CommandError(f"{path}: {error.detail}") from None
        conversion = services.create_conversion(document=document, owner=owner, priority=options["priority"],
                                                 engine=options["engine"], prompt_mode=options["prompt_mode"])
        self.stdout.write(f"{path}: queued as {conversion.pk}")
        return conversion

    def follow(self, conversions: list[Conversion], timeout: float) -> None:
        """One progress bar per file, from the database (the truth), until every job ends."""
        bars = {c.pk: tqdm(total=100, desc=c.document.filename[:30], unit="%", position=i, leave=True)
                for i, c in enumerate(conversions)}
        deadline = time.monotonic() + timeout
        pending = set(bars)
        while pending and time.monotonic() < deadline:
            for conversion in Conversion.objects.filter(pk__in=pending):
                bar = bars[conversion.pk]
                bar.update(conversion.progress - bar.n)
                bar.set_postfix_str(conversion.message[:40])
                if conversion.is_finished:
                    pending.discard(conversion.pk)
            time.sleep(0.2)
        for bar in bars.values():
            bar.close()
        if pending:
            raise CommandError(f"{len(pending)} conversion(s) still running after {timeout:.0f}s")

    def report(self, conversions: list[Conversion], options) -> None:
        """Print each job's outcome; a non-zero exit (CommandError) when one failed or was
        cancelled, or, with --sync, did not complete here (a cluster took it first)."""
        failed = False
        for conversion in conversions:
            if conversion.status == Conversion.Status.COMPLETED:
                self.stdout.write(f"{conversion.document.filename}: completed -> {conversion.output_dir}")
            elif conversion.is_finished:
                failed = True
                self.stderr.write(f"{conversion.document.filename}: {conversion.status}: {conversion.error}")
            elif options["sync"]:
                failed = True
                self.stderr.write(f"{conversion.document.filename}: {conversion.status}, not run here: "
                                  f"another worker claimed it first")
        if failed:
            raise CommandError("some conversions did not complete")
