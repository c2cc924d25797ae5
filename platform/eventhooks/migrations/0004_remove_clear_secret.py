from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("eventhooks", "0003_encrypt_secrets"),
    ]

    operations = [
        migrations.RemoveField(
            model_name="webhookendpoint",
            name="secret",
        ),
    ]
