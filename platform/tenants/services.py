"""Writes for accounts and tenancy."""

import hashlib
import logging
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import ApiToken, AuditEvent, Membership, Organization, Region, User
from .permissions import (
    grantable_roles,
    require_can_create_api_tokens,
    require_can_manage_api_tokens,
    require_can_manage_members,
)
from .request_context import api_token_current

logger = logging.getLogger(__name__)

API_TOKEN_PREFIX = "tw_"  # noqa: S105 - a public marker, not a secret
# last_used_at is written at most this often per token, so that a busy
# client does not turn every API call into a write.
API_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)


def api_token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- audit trail ------------------------------------------------------------------

REDACTED = "<redacted>"
_FROM_REQUEST = object()


def audit_snapshot(instance, fields) -> dict:
    """Field values of instance as the audit trail stores them (a foreign key as its id)."""
    opts = instance._meta
    return {name: opts.get_field(name).value_from_object(instance) for name in fields}


def audit_changes(before: dict, after: dict, *, redact=()) -> dict:
    """{field: [before, after]} for the fields whose value differs.

    Fields in redact are recorded as changed, never with their values.
    """
    changes = {}
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        changes[name] = [REDACTED, REDACTED] if name in redact else [old, new]
    return changes


def _actor_label(actor, token) -> str:
    if actor is None:
        return "system"
    if token is not None:
        return f"{actor.username} (API token {token.prefix}…)"
    return actor.username


def audit_event_record(
    *,
    event_type: str,
    organization: Organization | None,
    target=None,
    actor: User | None = None,
    actor_token: ApiToken | None = _FROM_REQUEST,
    actor_label: str = "",
    changes: dict | None = None,
    extra: dict | None = None,
) -> AuditEvent:
    """Record a change in the caller's transaction, so the record and the change
    commit or roll back together.

    actor None is a system actor: name it in actor_label ("system:tier-review").
    The API token defaults to the one that authenticated the current request.
    """
    assert transaction.get_connection().in_atomic_block, (
        "audit_event_record must run inside the transaction that makes the change"
    )
    if actor_token is _FROM_REQUEST:
        actor_token = api_token_current() if actor is not None else None
    event = AuditEvent(
        organization=organization,
        actor_user=actor,
        actor_token=actor_token,
        actor_label=(actor_label or _actor_label(actor, actor_token))[:200],
        event_type=event_type,
        changes=changes or {},
        extra=extra or {},
    )
    if target is not None:
        event.target_type = target._meta.label_lower
        event.target_id = str(target.pk)
        event.target_repr = str(target)[:200]
    event.save()
    return event


# --- organizations and memberships ---------------------------------------------------


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


def _role_checked(role: str) -> str:
    if role not in Membership.Role.values:
        raise ValidationError(
            {"role": f"Unknown role {role!r}; expected one of {Membership.Role.values}."}
        )
    return role


def _require_membership_manager(actor: User | None, organization: Organization) -> None:
    # actor None: the system (seeding, a data migration), which may.
    if actor is not None:
        require_can_manage_members(actor, organization)


@transaction.atomic
def membership_create(
    *, user: User, organization: Organization, role: str, actor: User | None
) -> Membership:
    _require_membership_manager(actor, organization)
    _role_checked(role)
    if Membership.objects.filter(user=user, organization=organization, role=role).exists():
        raise ValidationError({"role": f"{user} already has this role in {organization}."})
    membership = Membership.objects.create(user=user, organization=organization, role=role)
    audit_event_record(
        event_type=AuditEvent.EventType.MEMBERSHIP_CREATED,
        organization=organization,
        target=membership,
        actor=actor,
        changes={"role": [None, role]},
        extra={"user": user.pk},
    )
    logger.info(
        "membership created",
        extra={"membership_id": membership.pk, "organization_id": organization.pk, "role": role},
    )
    return membership


@transaction.atomic
def membership_role_change(*, membership: Membership, role: str, actor: User | None) -> Membership:
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _require_membership_manager(actor, membership.organization)
    _role_checked(role)
    previous = membership.role
    if role == previous:
        return membership
    if (
        Membership.objects.filter(
            user_id=membership.user_id, organization_id=membership.organization_id, role=role
        )
        .exclude(pk=membership.pk)
        .exists()
    ):
        raise ValidationError({"role": f"{membership.user} already has this role."})
    membership.role = role
    membership.save(update_fields=["role"])
    audit_event_record(
        event_type=AuditEvent.EventType.MEMBERSHIP_ROLE_CHANGED,
        organization=membership.organization,
        target=membership,
        actor=actor,
        changes={"role": [previous, role]},
        extra={"user": membership.user_id},
    )
    logger.info(
        "membership role changed",
        extra={"membership_id": membership.pk, "role_from": previous, "role_to": role},
    )
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership, actor: User | None) -> None:
    # Fresh and locked: the caller's copy may predate a role change.
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _require_membership_manager(actor, membership.organization)
    # Recorded first: the row keeps the membership's id and description.
    audit_event_record(
        event_type=AuditEvent.EventType.MEMBERSHIP_DELETED,
        organization=membership.organization,
        target=membership,
        actor=actor,
        changes={"role": [membership.role, None]},
        extra={"user": membership.user_id},
    )
    logger.info(
        "membership deleted",
        extra={"membership_id": membership.pk, "organization_id": membership.organization_id},
    )
    membership.delete()


# --- API tokens ----------------------------------------------------------------------


def api_token_fields_check(
    *, organization: Organization, created_by: User, name: str, roles, expires_at=None
) -> dict:
    """A new token's fields, checked: {"name", "roles" (sorted), "expires_at"}.

    Raises PermissionDenied when created_by may not create organization's
    tokens, ValidationError naming each bad field otherwise. Forms call it to
    show the errors beside their fields; api_token_create calls it again.
    """
    require_can_create_api_tokens(created_by, organization)
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = _("Give the token a name, e.g. the system that will use it.")
    try:
        roles = _api_token_roles_checked(created_by, organization, roles)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = _("Choose a time in the future, or none.")
    if errors:
        raise ValidationError(errors)
    return {"name": name, "roles": roles, "expires_at": expires_at}


def _api_token_roles_checked(creator: User, organization: Organization, roles) -> list[str]:
    """roles as a sorted list, when they are known roles the creator may give."""
    if isinstance(roles, str):
        roles = [roles]
    roles = sorted(set(roles or ()))
    if not roles:
        raise ValidationError({"roles": _("Choose at least one role for the token.")})
    unknown = [role for role in roles if role not in Membership.Role.values]
    if unknown:
        raise ValidationError(
            {
                "roles": _("Unknown role(s) %(unknown)s; expected some of %(known)s.")
                % {"unknown": ", ".join(unknown), "known": ", ".join(Membership.Role.values)}
            }
        )
    allowed = grantable_roles(creator, organization)
    refused = [role for role in roles if role not in allowed]
    if refused:
        raise ValidationError(
            {
                "roles": _(
                    "A token of %(organization)s may carry only roles you hold there (its "
                    "admins may give any). You may give: %(allowed)s; not: %(refused)s."
                )
                % {
                    "organization": organization,
                    "allowed": ", ".join(sorted(allowed)) or _("none"),
                    "refused": ", ".join(refused),
                }
            }
        )
    return roles


@transaction.atomic
def api_token_create(
    *,
    organization: Organization,
    created_by: User,
    name: str,
    roles,
    expires_at=None,
) -> tuple[ApiToken, str]:
    """Create a token acting for organization with roles, and return it with its
    secret, which is never stored.

    roles: never more than created_by may grant there (see grantable_roles);
    expires_at: None for a token that lasts until revoked.
    """
    checked = api_token_fields_check(
        organization=organization,
        created_by=created_by,
        name=name,
        roles=roles,
        expires_at=expires_at,
    )
    name, roles = checked["name"], checked["roles"]
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        created_by=created_by,
        name=name,
        prefix=secret[:10],
        digest=api_token_digest(secret),
        roles=roles,
        expires_at=expires_at,
    )
    # The prefix only: it tells tokens apart and cannot authenticate.
    audit_event_record(
        event_type=AuditEvent.EventType.API_TOKEN_CREATED,
        organization=organization,
        target=token,
        actor=created_by,
        changes={
            "name": [None, token.name],
            "roles": [None, roles],
            "expires_at": [None, expires_at],
        },
        extra={"prefix": token.prefix},
    )
    logger.info(
        "API token created",
        extra={
            "token_id": token.pk,
            "organization_id": organization.pk,
            "user_id": created_by.pk,
            "roles": roles,
        },
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User) -> ApiToken:
    require_can_manage_api_tokens(revoked_by, token.organization, verb="revoke")
    # Revoking twice keeps the first time: a retried request changes nothing.
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db(fields=["revoked_at"])
    if revoked:
        audit_event_record(
            event_type=AuditEvent.EventType.API_TOKEN_REVOKED,
            organization=token.organization,
            target=token,
            actor=revoked_by,
            changes={"revoked_at": [None, token.revoked_at]},
            extra={"prefix": token.prefix},
        )
        logger.info(
            "API token revoked",
            extra={
                "token_id": token.pk,
                "organization_id": token.organization_id,
                "user_id": revoked_by.pk,
            },
        )
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
