import factory
from factory.django import DjangoModelFactory

from tenants import services
from tenants.models import Membership, Organization, Region, User

DEFAULT_PASSWORD = "correct horse battery staple"


class RegionFactory(DjangoModelFactory):
    """Regions come from the seed; get_or_create keeps this working after a
    transactional test has flushed the seeded rows."""

    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = "520100"
    level = Region.Level.CITY
    name_zh = "贵阳市"
    name_en = "Guiyang"
    parent = factory.LazyFunction(
        lambda: Region.objects.get_or_create(
            code="520000",
            defaults={
                "level": Region.Level.PROVINCE,
                "name_zh": "贵州省",
                "name_en": "Guizhou",
                "parent": Region.objects.get_or_create(
                    code="CN",
                    defaults={"level": Region.Level.COUNTRY, "name_zh": "中国", "name_en": "China"},
                )[0],
            },
        )[0]
    )


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    display_name = factory.Faker("name", locale="zh_CN")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def persist_password(obj, create, extracted, **kwargs):
        if create:
            obj.save(update_fields=["password"])


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    kind = Organization.Kind.CLIENT
    region = factory.SubFactory(RegionFactory)


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.CLIENT_DEVELOPER


def member(*, organization=None, role=Membership.Role.CLIENT_DEVELOPER, **user_fields) -> User:
    """A user with one role in organization (a new organization by default)."""
    user = UserFactory(**user_fields)
    MembershipFactory(user=user, organization=organization or OrganizationFactory(), role=role)
    return user


def api_token(*, organization, user=None, name="pipeline", roles=None, expires_at=None):
    """An API token and its secret, made the way the product makes them.

    roles: by default every role user holds in organization.
    """
    if user is None:
        user = member(organization=organization, role=Membership.Role.CLIENT_DEVELOPER)
    if roles is None:
        roles = Membership.objects.filter(user=user, organization=organization).values_list(
            "role", flat=True
        )
    return services.api_token_create(
        organization=organization,
        created_by=user,
        name=name,
        roles=list(roles),
        expires_at=expires_at,
    )


# --- annotation -----------------------------------------------------------------

SENTIMENT_SCHEMA = {
    "labels": [{"value": "positive", "title": "正面"}, {"value": "negative", "title": "负面"}]
}


def annotation_project(
    *,
    task_type="classification",
    label_schema=None,
    workforce=None,
    organization=None,
    status="active",
    **fields,
):
    """An active project of a client organization, staffed by a workforce centre."""
    from annotation import services as annotation_services
    from tenants.models import Organization

    organization = organization or OrganizationFactory(kind=Organization.Kind.CLIENT)
    workforce = workforce or OrganizationFactory(kind=Organization.Kind.WORKFORCE)
    owner = member(organization=organization, role=Membership.Role.CLIENT_DEVELOPER)
    if label_schema is None:
        label_schema = (
            SENTIMENT_SCHEMA if task_type in ("classification", "multi_label", "spans") else {}
        )
    return annotation_services.project_create(
        organization=organization,
        created_by=owner,
        name=f"{task_type} project",
        task_type=task_type,
        label_schema=label_schema,
        workforce=workforce,
        status=status,
        **fields,
    )


def items(project, count, *, data=None, gold_every=0):
    """count items of project, each a dict like data with its number in the text."""
    from annotation.models import Item

    made = []
    for n in range(count):
        gold = gold_every and n % gold_every == 0
        made.append(
            Item(
                project=project,
                external_id=f"item-{n}",
                data=data or {"text": f"第{n}条评论：很好吃"},
                gold_answer={"label": "positive"} if gold else None,
                is_gold=bool(gold),
                target_annotations=None if gold else project.initial_target,
            )
        )
    return Item.objects.bulk_create(made)


def worker(project, *, role=Membership.Role.ANNOTATOR, tier=1, **fields):
    """A member of the project's workforce centre with role."""
    return member(organization=project.workforce, role=role, skill_tier=tier, **fields)
