"""Reads for accounts and tenancy. Every tenant-scoped read goes through here."""

from collections.abc import Iterable

from django.db.models import QuerySet

from .models import ApiToken, Membership, Organization, Region


def organization_ids_for_user(*, user, roles: Iterable[str] | None = None) -> list[int]:
    """The active organizations where user holds a role (one of roles, if given).

    A person's own memberships: what a request may do goes through
    tenants.permissions.principal_for, which narrows an API token's request.
    """
    if not user or not user.is_authenticated:
        return []
    memberships = Membership.objects.filter(user=user, organization__is_active=True)
    if roles is not None:
        memberships = memberships.filter(role__in=list(roles))
    return sorted(set(memberships.values_list("organization_id", flat=True)))


def queryset_scope(
    queryset: QuerySet, *, organization_ids: list[int], path: str | None = None
) -> QuerySet:
    """Restrict queryset to rows of the given organizations.

    Every model served by the API declares `tenant_path`, the lookup from the
    model to its Organization, or None for reference data anyone may read.
    Declaring it is mandatory: a model without it fails loudly here instead of
    leaking across tenants. A view may scope by another path (`path`), e.g.
    projects seen by the annotation centre that staffs them.
    """
    path = path or queryset.model.tenant_path
    if path is None:
        return queryset
    return queryset.filter(**{f"{path}__in": organization_ids})


def roles_for_user(*, user, organization: Organization | None = None) -> set[str]:
    if not user or not user.is_authenticated:
        return set()
    memberships = Membership.objects.filter(user=user, organization__is_active=True)
    if organization is not None:
        memberships = memberships.filter(organization=organization)
    return set(memberships.values_list("role", flat=True))


def memberships_held(*, user_id: int) -> list[tuple[int, str, str]]:
    """(organization id, organization kind, role) of user_id in active organizations."""
    return list(
        Membership.objects.filter(user_id=user_id, organization__is_active=True)
        .order_by("organization_id", "role")
        .values_list("organization_id", "organization__kind", "role")
    )


def role_kinds_for_user(*, user) -> set[tuple[str, str]]:
    """(role, organization kind) pairs user holds in active organizations."""
    if not user or not user.is_authenticated:
        return set()
    return set(
        Membership.objects.filter(user=user, organization__is_active=True).values_list(
            "role", "organization__kind"
        )
    )


def memberships_for_user(*, user) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user, organization__is_active=True)
        .select_related("organization", "organization__region")
        .order_by("organization__name", "role")
    )


def api_token_get_by_digest(*, digest: str) -> ApiToken | None:
    return (
        ApiToken.objects.select_related("organization", "created_by").filter(digest=digest).first()
    )


def api_tokens_manageable(*, organization_ids: list[int]) -> QuerySet[ApiToken]:
    """Tokens of the given organizations, newest first (never their secrets)."""
    return ApiToken.objects.filter(organization_id__in=organization_ids).select_related(
        "organization", "created_by"
    )


def region_descendant_ids(*, region: Region) -> list[int]:
    """The region itself and everything under it (a province includes its cities)."""
    ids, frontier = [region.pk], [region.pk]
    while frontier:
        frontier = list(Region.objects.filter(parent_id__in=frontier).values_list("pk", flat=True))
        ids.extend(frontier)
    return ids


def organization_members(*, organization: Organization) -> list[dict]:
    """Everyone with a role in organization: {"user", "roles"} by username."""
    people: dict[int, dict] = {}
    memberships = (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__username", "role")
    )
    for membership in memberships:
        person = people.setdefault(membership.user_id, {"user": membership.user, "roles": []})
        person["roles"].append(membership.role)
    return list(people.values())
