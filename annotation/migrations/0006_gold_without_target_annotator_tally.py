import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import Count, F, Q


def gold_targets_clear(apps, schema_editor):
    # Gold items had a made-up target of 32,000; they have none now.
    apps.get_model("annotation", "Item").objects.filter(is_gold=True).update(
        target_annotations=None
    )


def gold_targets_restore(apps, schema_editor):
    apps.get_model("annotation", "Item").objects.filter(is_gold=True).update(
        target_annotations=32_000
    )


def tallies_fill(apps, schema_editor):
    """Tally what each annotator was served so far, as the lease will from now on."""
    Assignment = apps.get_model("annotation", "Assignment")
    AnnotatorTally = apps.get_model("annotation", "AnnotatorTally")
    rows = (
        Assignment.objects.values("project_id", "annotator_id")
        .annotate(tasks=Count("pk"), gold=Count("pk", filter=Q(item__is_gold=True)))
        .order_by("project_id", "annotator_id")
    )
    batch = []
    for row in rows.iterator(chunk_size=5000):
        batch.append(AnnotatorTally(**row))
        if len(batch) == 5000:
            AnnotatorTally.objects.bulk_create(batch)
            batch = []
    AnnotatorTally.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_review_leases"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="item",
            name="target_annotations",
            field=models.PositiveSmallIntegerField(blank=True, default=1, null=True),
        ),
        migrations.RunPython(gold_targets_clear, gold_targets_restore, elidable=True),
        migrations.AddConstraint(
            model_name="item",
            constraint=models.CheckConstraint(
                condition=Q(is_gold=False, target_annotations__isnull=False)
                | Q(is_gold=True, target_annotations__isnull=True),
                name="item_target_unless_gold",
            ),
        ),
        migrations.AddIndex(
            model_name="item",
            index=models.Index(
                "project",
                F("priority").desc(),
                "id",
                condition=Q(status="open", is_gold=True),
                name="item_next_gold",
            ),
        ),
        migrations.CreateModel(
            name="AnnotatorTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tasks", models.PositiveIntegerField(default=0)),
                ("gold", models.PositiveIntegerField(default=0)),
                (
                    "annotator",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.project",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("project", "annotator"), name="annotator_tally_once_per_project"
                    ),
                    models.CheckConstraint(
                        condition=Q(gold__lte=F("tasks")), name="annotator_tally_gold_within_tasks"
                    ),
                ],
            },
        ),
        migrations.RunPython(tallies_fill, migrations.RunPython.noop, elidable=True),
    ]
