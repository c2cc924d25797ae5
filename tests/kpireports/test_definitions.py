from pathlib import Path

from django.core.management import call_command
from django.utils import translation

from kpireports.definitions import MEASURES, measures_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "MEASURES.md"


def test_the_measures_document_is_the_definitions_the_dashboard_shows():
    with translation.override("en"):
        assert DOC.read_text(encoding="utf-8") == measures_markdown()


def test_every_measure_has_a_label_and_a_definition():
    # In English whatever an earlier test left active: Chinese texts are shorter.
    with translation.override("en"):
        _every_measure_has_a_label_and_a_definition()


def _every_measure_has_a_label_and_a_definition():
    for key, measure in MEASURES.items():
        assert measure.key == key and str(measure.label) and len(str(measure.definition)) > 10


def test_the_command_prints_the_document(capsys):
    call_command("measures_doc")
    assert capsys.readouterr().out == DOC.read_text(encoding="utf-8")
