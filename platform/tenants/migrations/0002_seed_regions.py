from django.db import migrations


def seed_regions(apps, schema_editor):
    # Imported here, not at module level, so the migration keeps working if
    # region_data grows: reruns update names and add regions, never duplicate.
    from tenants.region_data import CITIES, COUNTRY, PROVINCES

    Region = apps.get_model("tenants", "Region")
    code, name_zh, name_en = COUNTRY
    country, _ = Region.objects.update_or_create(
        code=code, defaults={"level": "country", "parent": None, "name_zh": name_zh,
                             "name_en": name_en}
    )
    provinces = {}
    for code, name_zh, name_en in PROVINCES:
        provinces[code], _ = Region.objects.update_or_create(
            code=code, defaults={"level": "province", "parent": country, "name_zh": name_zh,
                                 "name_en": name_en}
        )
    for code, name_zh, name_en, province_code in CITIES:
        Region.objects.update_or_create(
            code=code, defaults={"level": "city", "parent": provinces[province_code],
                                 "name_zh": name_zh, "name_en": name_en}
        )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(seed_regions, migrations.RunPython.noop)]
