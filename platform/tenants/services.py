"""Writes for accounts and tenancy."""

import hashlib
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .models import ApiToken, Membership, Organization, Region, User
from .permissions import require_can_manage_api_tokens

API_TOKEN_PREFIX = "tw_"  # noqa: S105 - a public marker, not a secret
# last_used_at is written at most this often per token, so that a busy
# client does not turn every API call into a write.
API_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)


def api_token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def organization_get_or_create(
    *, slug: str, name: str, kind: str, region: Region
) -> tuple[Organization, bool]:
    """The organization with this slug, created (name, kind, region) when missing."""
    organization = Organization.objects.filter(slug=slug).first()
    if organization is not None:
        return organization, False
    organization = Organization(name=name, slug=slug, kind=kind, region=region)
    organization.full_clean()
    organization.save()
    return organization, True


@transaction.atomic
def annotators_create(*, organization: Organization, people: list[tuple[str, str]]) -> list[User]:
    """Many (username, display name) people at once, each an annotator of organization.

    They get no usable password: an admin sets one, or they only carry history.
    """
    users = []
    for username, display_name in people:
        user = User(username=username, display_name=display_name)
        user.set_unusable_password()
        users.append(user)
    User.objects.bulk_create(users)
    Membership.objects.bulk_create(
        [
            Membership(user=user, organization=organization, role=Membership.Role.ANNOTATOR)
            for user in users
        ]
    )
    return users


@transaction.atomic
def users_skill_tier_set(*, levels: dict[int, int]) -> int:
    """Move people (user id -> level) to skill tiers; the value chain decides which.

    One UPDATE per level, in id order, however many people move.
    """
    by_level: dict[int, list[int]] = {}
    for user_id, level in sorted(levels.items()):
        by_level.setdefault(level, []).append(user_id)
    return sum(
        User.objects.filter(pk__in=user_ids).update(skill_tier=level)
        for level, user_ids in sorted(by_level.items())
    )


@transaction.atomic
def api_token_create(
    *, organization: Organization, created_by: User, name: str
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored."""
    require_can_manage_api_tokens(created_by, organization, verb="create")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the token a name, e.g. the system that will use it."})
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        created_by=created_by,
        name=name,
        prefix=secret[:10],
        digest=api_token_digest(secret),
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User) -> ApiToken:
    require_can_manage_api_tokens(revoked_by, token.organization, verb="revoke")
    # Revoking twice keeps the first time: a retried request changes nothing.
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_token_touch(*, token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at and now - token.last_used_at < API_TOKEN_TOUCH_INTERVAL:
        return
    # A single UPDATE, no transaction of its own: it must not fail a request.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


@transaction.atomic
def regions_sync(*, region_model=Region) -> int:
    """Create or update the seeded regions; returns how many exist afterwards.

    region_model is the historical model when a data migration calls this.
    Reruns update names and add regions; they never duplicate one.
    """
    from .region_data import CITIES, COUNTRY, PROVINCES

    code, name_zh, name_en = COUNTRY
    country, _ = region_model.objects.update_or_create(
        code=code,
        defaults={"level": "country", "parent": None, "name_zh": name_zh, "name_en": name_en},
    )
    provinces = {}
    for code, name_zh, name_en in PROVINCES:
        provinces[code], _ = region_model.objects.update_or_create(
            code=code,
            defaults={
                "level": "province",
                "parent": country,
                "name_zh": name_zh,
                "name_en": name_en,
            },
        )
    for code, name_zh, name_en, province_code in CITIES:
        region_model.objects.update_or_create(
            code=code,
            defaults={
                "level": "city",
                "parent": provinces[province_code],
                "name_zh": name_zh,
                "name_en": name_en,
            },
        )
    return region_model.objects.count()
