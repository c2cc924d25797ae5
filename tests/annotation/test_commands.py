import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Item
from tests.factories import annotation_project

pytestmark = pytest.mark.django_db


def test_import_items_command_imports_and_reports(tmp_path, capsys):
    project = annotation_project()
    path = tmp_path / "items.jsonl"
    path.write_text(
        "".join(
            json.dumps({"external_id": f"c{n}", "text": f"评论{n}"}, ensure_ascii=False) + "\n"
            for n in range(50)
        )
    )
    call_command(
        "import_items", project.pk, str(path), user=project.created_by.username, verbosity=0
    )
    assert Item.objects.filter(project=project).count() == 50
    assert "50 created" in capsys.readouterr().out


def test_import_items_command_fails_with_the_bad_rows(tmp_path, capsys):
    project = annotation_project()
    path = tmp_path / "items.csv"
    path.write_text("external_id,text,gold\na,好,positive\nb,,negative\n")
    with pytest.raises(CommandError, match="1 of 2 rows are invalid"):
        call_command(
            "import_items", project.pk, str(path), user=project.created_by.username, verbosity=0
        )
    assert "row 3: data.text: must not be empty" in capsys.readouterr().err
    assert not Item.objects.exists()


def test_import_items_command_names_a_missing_file(tmp_path):
    project = annotation_project()
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "import_items",
            project.pk,
            str(tmp_path / "nope.jsonl"),
            user=project.created_by.username,
        )
