from django.db import migrations, models

# Calls metered before this migration were written once their item had ended,
# so each item's last call without a prediction was its final failure.
MARK_FINAL = """
UPDATE compute_inferencecall SET final = TRUE
WHERE run_id IS NOT NULL
  AND attempt = (
    SELECT MAX(c2.attempt) FROM compute_inferencecall c2
    WHERE c2.run_id = compute_inferencecall.run_id AND c2.item_id = compute_inferencecall.item_id
  )
  AND NOT EXISTS (
    SELECT 1 FROM compute_prediction p
    WHERE p.run_id = compute_inferencecall.run_id AND p.item_id = compute_inferencecall.item_id
  )
"""


class Migration(migrations.Migration):
    dependencies = [
        ("compute", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="inferencecall",
            name="final",
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name="inferencecall",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("ok", "Answered"),
                    ("invalid", "Answer violated the schema"),
                    ("rate_limited", "Rate limited (429)"),
                    ("server_error", "Server error (5xx)"),
                    ("timeout", "Timed out"),
                    ("connection", "Connection failed"),
                    ("malformed", "Malformed reply"),
                    ("rejected", "Rejected (4xx)"),
                    ("error", "Failed"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="prelabelrun",
            name="failures",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="prelabelrun",
            name="retry_policy",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AlterField(
            model_name="prelabelrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("cancelled", "Cancelled"),
                    ("succeeded", "Succeeded"),
                    ("partial", "Finished with failed items"),
                    ("failed", "Failed"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.RunSQL(MARK_FINAL, migrations.RunSQL.noop),
    ]
