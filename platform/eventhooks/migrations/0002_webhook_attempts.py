import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("eventhooks", "0001_initial"),
    ]

    operations = [
        # A default, so that 0004 (which drops the clear column) can be reversed
        # on a table with rows.
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=models.CharField(blank=True, default="", max_length=100),
        ),
        migrations.AddField(
            model_name="webhookendpoint",
            name="secret_encrypted",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="webhookdelivery",
            name="attempt_limit",
            field=models.PositiveSmallIntegerField(default=8),
        ),
        migrations.CreateModel(
            name="WebhookAttempt",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveSmallIntegerField()),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("address", models.GenericIPAddressField(blank=True, null=True)),
                ("status_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("error", models.TextField(blank=True)),
                ("latency_ms", models.PositiveIntegerField(blank=True, null=True)),
                ("response_excerpt", models.TextField(blank=True)),
                ("delivery", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="attempt_log", to="eventhooks.webhookdelivery")),
            ],
            options={
                "ordering": ["delivery", "number"],
                "constraints": [models.UniqueConstraint(fields=("delivery", "number"), name="attempt_number_once")],
            },
        ),
    ]
