from django.db import migrations


def seed_regions(apps, schema_editor):
    from tenants.services import regions_sync

    regions_sync(region_model=apps.get_model("tenants", "Region"))


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(seed_regions, migrations.RunPython.noop)]
