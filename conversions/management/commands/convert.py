"""`manage.py convert FILE_OR_FOLDER... [--batch] [--pages P] [--engine E] [--prompt-mode M] [--priority N]
[--wait | --sync]`"""

import time
from contextlib import ExitStack
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from conversions import batches, selectors, services, storage
from conversions.exceptions import DomainError, InvalidDocument
from conversions.models import Conversion
from workers import pipeline
from workers.ocr import ENGINES
from workers.ocr.base import DEFAULT_PROMPT_MODE, PROMPT_MODES


class Command(BaseCommand):
    help = (
        "Queue files (PDF, images, Office and text documents; a folder: each file in it) for conversion; "
        "--batch queues them as one batch, all or none; --wait follows them with progress bars, --sync runs "
        "them here."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE_OR_FOLDER")
        parser.add_argument(
            "--batch", action="store_true", help="one batch: every file is checked before any is queued"
        )
        parser.add_argument("--pages", default="", help='pages to convert, 1-based: "1-3,7,10-" (default: all)')
        parser.add_argument("--engine", choices=ENGINES, default=settings.OCR_ENGINE)
        parser.add_argument("--prompt-mode", choices=PROMPT_MODES, default=DEFAULT_PROMPT_MODE)
        parser.add_argument("--priority", type=int, default=0)
        parser.add_argument("--wait", action="store_true", help="follow the jobs until they end (needs qcluster)")
        parser.add_argument("--sync", action="store_true", help="run the jobs in this process, no cluster needed")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits at most")

    def handle(self, *args, **options):
        owner = services.default_owner()
        paths = files_in(options["files"])
        if options["batch"]:
            conversions = self.queue_batch(paths, owner, options)
            for conversion in conversions if options["sync"] else []:
                pipeline.run_one(conversion.pk)
        elif options["sync"]:
            # Each job runs as soon as it is queued, claimed by its id: never another
            # user's job, whatever the queue holds.
            conversions = []
            for path in paths:
                conversions.append(self.queue(path, owner, options))
                pipeline.run_one(conversions[-1].pk)
        else:
            conversions = [self.queue(path, owner, options) for path in paths]
        if options["wait"] and not options["sync"]:
            self.follow(conversions, options["timeout"])
        self.report([selectors.conversion_by_id(conversion.pk) for conversion in conversions], options)

    def queue(self, path: Path, owner, options) -> Conversion:
        with open(path, "rb") as handle:
            try:
                document = services.create_document(
                    owner=owner, upload=File(handle, name=path.name), max_pages=settings.MAX_PAGES
                )
            except InvalidDocument as error:
                raise CommandError(f"{path}: {error.detail}") from None
        try:
            conversion = services.create_conversion(
                document=document,
                owner=owner,
                priority=options["priority"],
                engine=options["engine"],
                prompt_mode=options["prompt_mode"],
                pages=options["pages"],
            )
        except DomainError as error:
            document.delete()
            storage.delete(document.stored_path)
            raise CommandError(f"{path}: {error.detail}") from None
        self.stdout.write(f"{path}: queued as {conversion.pk}")
        return conversion

    def queue_batch(self, paths: list[Path], owner, options) -> list[Conversion]:
        """All the files as one batch: one bad file refuses the lot, naming it."""
        with ExitStack() as stack:
            uploads = [File(stack.enter_context(open(path, "rb")), name=path.name) for path in paths]
            try:
                batch = batches.submit_batch(
                    owner=owner,
                    uploads=uploads,
                    source_urls=[],
                    options=batches.BatchOptions(
                        engine=options["engine"],
                        prompt_mode=options["prompt_mode"],
                        priority=options["priority"],
                        pages=options["pages"],
                    ),
                )
            except DomainError as error:
                raise CommandError(f"nothing queued: {error.detail}") from None
        conversions = list(selectors.batch_conversions(batch))
        self.stdout.write(f"batch {batch.pk}: {len(conversions)} conversions queued")
        return conversions

    def follow(self, conversions: list[Conversion], timeout: float) -> None:
        """One progress bar per file, from the database (the truth), until every job ends."""
        bars = {
            c.pk: tqdm(total=100, desc=c.document.filename[:30], unit="%", position=i, leave=True)
            for i, c in enumerate(conversions)
        }
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
                self.stdout.write(
                    f"{conversion.document.filename}: completed -> {storage.shown_path(conversion.output_dir)}"
                )
            elif conversion.is_finished:
                failed = True
                self.stderr.write(f"{conversion.document.filename}: {conversion.status}: {conversion.error}")
            elif options["sync"]:
                failed = True
                self.stderr.write(
                    f"{conversion.document.filename}: {conversion.status}, not run here: "
                    f"another worker claimed it first"
                )
        if failed:
            raise CommandError("some conversions did not complete")


def files_in(paths: list[Path]) -> list[Path]:
    """The files named, each folder replaced by the files in it (not its subfolders;
    hidden files left out), in name order. Raises CommandError for a missing path."""
    found = []
    for path in paths:
        if path.is_dir():
            found += sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith("."))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{path}: no such file or folder")
    if not found:
        raise CommandError("no files to convert")
    return found
