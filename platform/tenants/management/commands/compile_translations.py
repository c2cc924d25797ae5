"""Compile .po catalogs to .mo with polib, so no GNU gettext is needed.

Django's own compilemessages shells out to msgfmt, which a fresh machine with
only Python does not have. The .mo files are build output and not committed.
"""

from pathlib import Path

import polib
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Compile the project's .po translation catalogs to .mo (only those out of date)."

    def handle(self, *args, **options):
        compiled = 0
        for locale_dir in map(Path, settings.LOCALE_PATHS):
            for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
                mo_path = po_path.with_suffix(".mo")
                if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                    continue
                catalog = polib.pofile(str(po_path))
                catalog.save_as_mofile(str(mo_path))
                compiled += 1
                self.stdout.write(
                    f"compiled {po_path.relative_to(settings.BASE_DIR)} "
                    f"({catalog.percent_translated()}% translated)"
                )
        if options["verbosity"] > 1 or compiled:
            self.stdout.write(f"{compiled} catalog(s) compiled")
