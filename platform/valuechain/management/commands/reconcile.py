import json
import time

from django.core.management.base import BaseCommand, CommandError

from valuechain.services import rollups_reconcile


class Command(BaseCommand):
    help = (
        "Prove the ledger rollups equal the ledger, to six decimal places of a yuan; "
        "with --repair, rewrite any rollup that differs. Exits 1 when differences remain."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true")

    def handle(self, *args, repair=False, **options):
        started = time.perf_counter()
        result = rollups_reconcile(repair=repair, actor_label="system:manage.py reconcile")
        seconds = time.perf_counter() - started
        for difference in result["differences"][:20]:
            self.stderr.write(json.dumps(difference, default=str, ensure_ascii=False))
        summary = (
            f"{result['keys']} rollup keys checked in {seconds:.2f} s, "
            f"{len(result['differences'])} differences"
        )
        if result["differences"] and not repair:
            raise CommandError(summary + " (run with --repair to fix them)")
        self.stdout.write(summary + (", repaired" if result["repaired"] else ""))
