from datetime import date

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from valuechain.services import ledger_partition_detach, ledger_partitions_ensure


class Command(BaseCommand):
    help = (
        "Create the ledger's monthly partitions ahead (PostgreSQL; beat does it hourly), "
        "or detach one month for archiving: --detach YYYY-MM."
    )

    def add_arguments(self, parser):
        parser.add_argument("--months-ahead", type=int, default=3)
        parser.add_argument("--detach", metavar="YYYY-MM")

    def handle(self, *args, months_ahead=3, detach=None, **options):
        if detach:
            try:
                month = date.fromisoformat(f"{detach}-01")
            except ValueError as error:
                raise CommandError(f"--detach: expected YYYY-MM, got {detach!r}") from error
            try:
                name = ledger_partition_detach(month=month)
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from error
            self.stdout.write(f"detached {name}: dump it, then drop it when archived")
            return
        created = ledger_partitions_ensure(months_ahead=months_ahead)
        self.stdout.write(
            f"{len(created)} partitions created" + (f": {', '.join(created)}" if created else "")
        )
