from django.db import migrations, models


class Migration(migrations.Migration):
    """A heartbeat on import and export jobs, so that beat can fail a job whose
    worker died instead of leaving it running forever."""

    dependencies = [
        ("annotation", "0006_gold_without_target_annotator_tally"),
    ]

    operations = [
        migrations.AddField(
            model_name="exportjob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="importjob",
            name="heartbeat_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
