from django.core.management.base import BaseCommand
from django.utils import translation

from kpireports.definitions import measures_markdown


class Command(BaseCommand):
    help = "Print docs/MEASURES.md: every reported measure with its definition."

    def handle(self, *args, **options):
        with translation.override("en"):
            self.stdout.write(measures_markdown(), ending="")
