"""Import a (possibly huge) file into a project from the command line, with progress."""

from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotation.import_readers import FORMATS
from annotation.imports import import_job_create, import_job_run
from annotation.models import ImportJob, Project
from tenants.models import User


class Command(BaseCommand):
    help = (
        "Import items from a JSONL, JSON, CSV or Label Studio file into a project. "
        "The file is streamed; with --on-error reject (default) any bad row imports nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", type=int, help="project id")
        parser.add_argument("path", type=Path, help="file to import")
        parser.add_argument(
            "--user", required=True, help="username of the client developer or manager importing"
        )
        parser.add_argument("--format", choices=FORMATS, default="")
        parser.add_argument("--encoding", default="", help="default: detect UTF-8 or GB18030")
        parser.add_argument(
            "--on-conflict",
            choices=ImportJob.OnConflict.values,
            default=ImportJob.OnConflict.UPDATE,
        )
        parser.add_argument(
            "--on-error", choices=ImportJob.OnError.values, default=ImportJob.OnError.REJECT
        )

    def handle(self, *args, **options):
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        project = Project.objects.filter(pk=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with id {options['project']}")
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user {options['user']!r}")
        try:
            with path.open("rb") as handle:
                job = import_job_create(
                    project=project,
                    created_by=user,
                    upload=File(handle, name=path.name),
                    format=options["format"],
                    encoding=options["encoding"],
                    on_conflict=options["on_conflict"],
                    on_error=options["on_error"],
                    enqueue=False,
                )
        except (ValidationError, PermissionDenied) as error:
            raise CommandError(str(error)) from error

        with tqdm(
            total=job.file_size,
            unit="B",
            unit_scale=True,
            desc=path.name,
            disable=options["verbosity"] == 0,
        ) as bar:

            def progress(current):
                bar.update(current.bytes_read - bar.n)
                bar.set_postfix(rows=current.rows_read, bad=current.rows_invalid)

            job = import_job_run(job_id=job.pk, on_progress=progress)

        for error in job.errors[:20]:
            self.stderr.write(f"row {error['row']}: {error['field'] or '-'}: {error['message']}")
        if job.rows_invalid > 20:
            self.stderr.write(
                f"… and {job.rows_invalid - 20} more bad rows (see import job {job.pk})"
            )
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(f"import failed: {job.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"imported {job.rows_valid} rows: {job.created_count} created, "
                f"{job.updated_count} updated, {job.skipped_count} skipped, "
                f"{job.duplicate_count} duplicates in the file, {job.rows_invalid} bad"
            )
        )
