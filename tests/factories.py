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


def api_token(*, organization, user=None, name="pipeline"):
    """An API token and its secret, made the way the product makes them."""
    if user is None:
        user = member(organization=organization, role=Membership.Role.CLIENT_DEVELOPER)
    return services.api_token_create(organization=organization, created_by=user, name=name)
