from django.db import migrations, models


class Migration(migrations.Migration):
    """Leases on background jobs, so that beat re-dispatches a job whose worker
    died (or whose message was lost) within a minute or two, and two runs never
    hold one job at once."""

    dependencies = [
        ('annotation', '0008_quality_engine'),
    ]

    operations = [
        migrations.AddField(
            model_name='exportjob',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='exportjob',
            name='claimed_by',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='exportjob',
            name='dispatched_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='exportjob',
            name='lease_expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='attempts',
            field=models.PositiveSmallIntegerField(default=0),
        ),
        migrations.AddField(
            model_name='importjob',
            name='claimed_by',
            field=models.CharField(blank=True, default='', max_length=200),
        ),
        migrations.AddField(
            model_name='importjob',
            name='dispatched_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='importjob',
            name='lease_expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
