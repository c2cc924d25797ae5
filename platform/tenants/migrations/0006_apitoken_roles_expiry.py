"""API tokens get their own roles and an optional expiry.

Until now a token acted as the person who created it. Each existing token
gets the roles its creator holds in the token's organization now, so it
keeps doing what it did there and nothing more. A live token whose creator
holds no role there (e.g. one made in the admin by a superuser who is not a
member) cannot be given roles safely: it is revoked, and the revocation is in
the audit trail. Every token has an organization (the column has been NOT NULL
since 0001), so no token needs one guessed.
"""

from django.db import migrations, models
from django.utils import timezone

MIGRATION_ACTOR = "system:migration tenants.0006"


def roles_from_creators(apps, schema_editor):
    ApiToken = apps.get_model("tenants", "ApiToken")
    Membership = apps.get_model("tenants", "Membership")
    AuditEvent = apps.get_model("tenants", "AuditEvent")
    now = timezone.now()
    held: dict[tuple[int, int], set[str]] = {}
    for user_id, organization_id, role in Membership.objects.values_list(
        "user_id", "organization_id", "role"
    ):
        held.setdefault((user_id, organization_id), set()).add(role)
    for token in ApiToken.objects.order_by("pk"):
        token.roles = sorted(held.get((token.created_by_id, token.organization_id), ()))
        fields = ["roles"]
        revoke = not token.roles and token.revoked_at is None
        if revoke:
            token.revoked_at = now
            fields.append("revoked_at")
        token.save(update_fields=fields)
        if revoke:
            AuditEvent.objects.create(
                created_at=now,
                organization_id=token.organization_id,
                actor_label=MIGRATION_ACTOR,
                event_type="api_token.revoked",
                target_type="tenants.apitoken",
                target_id=str(token.pk),
                target_repr=f"{token.name} ({token.prefix}…)"[:200],
                changes={"revoked_at": [None, now]},
                extra={
                    "prefix": token.prefix,
                    "reason": "its creator holds no role in the token's organization",
                },
            )


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0005_audit_quarantine_events"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="expires"),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="roles",
            field=models.JSONField(default=list, verbose_name="roles"),
        ),
        migrations.RunPython(roles_from_creators, migrations.RunPython.noop),
    ]
