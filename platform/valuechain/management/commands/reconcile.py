import json
import time

from django.core.management.base import BaseCommand, CommandError

from valuechain.services import rollups_reconcile


class Command(BaseCommand):
    help = (
        "Prove the ledger rollups equal the ledger, to six decimal places of a yuan; "
        "with --repair, rewrite any rollup that differs. Exits 1 when differences remain. "
        "Checks the months added since the last clean check; --full checks every month (audits)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true")
        parser.add_argument("--full", action="store_true", help="every month, not only new ones")

    def handle(self, *args, repair=False, full=False, **options):
        started = time.perf_counter()
        result = rollups_reconcile(
            repair=repair, full=full, actor_label="system:manage.py reconcile"
        )
        seconds = time.perf_counter() - started
        for difference in result["differences"][:20]:
            self.stderr.write(json.dumps(difference, default=str, ensure_ascii=False))
        summary = (
            f"{result['keys']} rollup keys checked ({'full' if full else 'new months'}) "
            f"in {seconds:.2f} s, "
            f"{len(result['differences'])} differences"
        )
        if result["differences"] and not repair:
            raise CommandError(summary + " (run with --repair to fix them)")
        self.stdout.write(summary + (", repaired" if result["repaired"] else ""))
