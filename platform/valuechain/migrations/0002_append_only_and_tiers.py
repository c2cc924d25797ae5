from decimal import Decimal

from django.db import migrations

TIERS = [
    # level, English, Chinese, pay, price (CNY per 1,000 tokens), gold, acceptance, volume
    (1, "Basic labeling", "基础标注", "0.40", "0.80", "0.000", "0.000", 0),
    (2, "Structured annotation", "结构化标注", "0.90", "1.80", "0.850", "0.850", 200_000),
    (3, "Review and quality assurance", "审核与质检", "1.80", "3.60", "0.900", "0.900", 1_000_000),
    (4, "Expert data for LLMs", "大模型专家数据", "4.00", "8.00", "0.930", "0.930", 3_000_000),
    (5, "Model operations", "模型运营", "8.00", "16.00", "0.950", "0.950", 8_000_000),
]

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION valuechain_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the token ledger is append-only: post a reversing entry instead';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER valuechain_ledger_append_only
    BEFORE UPDATE OR DELETE ON valuechain_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION valuechain_ledger_append_only();
"""
DROP = """
DROP TRIGGER IF EXISTS valuechain_ledger_append_only ON valuechain_ledgerentry;
DROP FUNCTION IF EXISTS valuechain_ledger_append_only();
"""


def append_only(apps, schema_editor):
    # The database itself refuses to rewrite history, whatever code runs.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY)


def drop_append_only(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


def seed_tiers(apps, schema_editor):
    SkillTier = apps.get_model("valuechain", "SkillTier")
    for level, en, zh, pay, price, gold, acceptance, volume in TIERS:
        SkillTier.objects.update_or_create(
            level=level,
            defaults={"name_en": en, "name_zh": zh, "pay_per_1k_tokens": Decimal(pay),
                      "price_per_1k_tokens": Decimal(price),
                      "min_gold_accuracy": Decimal(gold),
                      "min_review_acceptance": Decimal(acceptance),
                      "min_volume_tokens": volume},
        )


class Migration(migrations.Migration):
    dependencies = [("valuechain", "0001_initial")]

    operations = [
        migrations.RunPython(append_only, drop_append_only),
        migrations.RunPython(seed_tiers, migrations.RunPython.noop),
    ]
