"""The Chinese catalog can never drift from the code again.

`makemessages` runs over a temporary copy of the sources and the catalog (the
repository is never written), and the test fails when it would add a string
the catalog lacks or leave one untranslated or fuzzy. The second test proves
the check fails on a new English-only string by adding one to the copy.
"""

import os
import shutil
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.core.management import call_command

ROOT = Path(settings.BASE_DIR)
CATALOG = Path("locale/zh_Hans/LC_MESSAGES/django.po")
# The same as the README's workflow: what makemessages is told to skip.
IGNORED = {".venv", "bench", "tests", "var", "staticfiles", ".git", "test-artifacts"}

pytestmark = pytest.mark.skipif(
    shutil.which("xgettext") is None and not settings.REQUIRE_SERVICES,
    reason="no GNU gettext (apt-get install gettext): makemessages needs xgettext",
)


def _copy_sources(into: Path) -> Path:
    copy = into / "src"

    def skipped(directory, names):
        at_root = Path(directory).resolve() == ROOT.resolve()
        return [
            n
            for n in names
            if (at_root and n in IGNORED)
            or n in {"__pycache__", "node_modules"}
            or n.endswith(".mo")
        ]

    shutil.copytree(ROOT, copy, ignore=skipped)
    return copy


def _makemessages(copy: Path, settings_) -> polib.POFile:
    settings_.LOCALE_PATHS = [copy / "locale"]
    here = os.getcwd()
    os.chdir(copy)
    try:
        call_command(
            "makemessages",
            locale=["zh_Hans"],
            ignore_patterns=sorted(IGNORED),
            verbosity=0,
        )
    finally:
        os.chdir(here)
    return polib.pofile(str(copy / CATALOG))


def catalog_drift(regenerated: polib.POFile, committed: polib.POFile) -> dict[str, list[str]]:
    """What makemessages would change: strings it adds, and those it leaves
    untranslated or fuzzy (a fuzzy guess is not shown to anyone)."""
    known = {(e.msgctxt, e.msgid) for e in committed if not e.obsolete}
    live = [e for e in regenerated if not e.obsolete]
    return {
        "new": [e.msgid for e in live if (e.msgctxt, e.msgid) not in known],
        "untranslated": [e.msgid for e in live if not e.translated() and "fuzzy" not in e.flags],
        "fuzzy": [e.msgid for e in live if "fuzzy" in e.flags],
    }


def test_makemessages_finds_nothing_new_untranslated_or_fuzzy(tmp_path, settings):
    committed = polib.pofile(str(ROOT / CATALOG))
    drift = catalog_drift(_makemessages(_copy_sources(tmp_path), settings), committed)
    assert drift == {"new": [], "untranslated": [], "fuzzy": []}, (
        "Run makemessages -l zh_Hans (see README, Translations) and translate these"
    )


def test_a_new_english_only_string_fails_the_check(tmp_path, settings):
    copy = _copy_sources(tmp_path)
    page = copy / "templates" / "drift_probe.html"
    page.write_text(
        '{% load i18n %}<p>{% translate "A sentence nobody has translated yet" %}</p>\n',
        encoding="utf-8",
    )
    committed = polib.pofile(str(ROOT / CATALOG))
    drift = catalog_drift(_makemessages(copy, settings), committed)
    assert "A sentence nobody has translated yet" in drift["new"]
    assert "A sentence nobody has translated yet" in drift["untranslated"]
    assert not (ROOT / "templates" / "drift_probe.html").exists()
