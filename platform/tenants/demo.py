"""Demo organizations and people for `make run`, idempotent by natural keys."""

from dataclasses import dataclass, field

from django.db import transaction

from .models import Membership, Organization, Region, User

# Public on purpose: printed by `make run`. seed_demo refuses to run with
# DEBUG off unless told otherwise.
DEMO_PASSWORD = "tokenworks-demo"  # noqa: S105

ORGANIZATIONS = [
    # slug, name, kind, region code
    ("qianfan-ai", "Qianfan AI (Hangzhou)", Organization.Kind.CLIENT, "330100"),
    (
        "guiyang-data-centre",
        "Guiyang Data Annotation Centre",
        Organization.Kind.WORKFORCE,
        "520100",
    ),
    (
        "zhengzhou-annotation-base",
        "Zhengzhou Annotation Base",
        Organization.Kind.WORKFORCE,
        "410100",
    ),
    (
        "guizhou-bigdata-bureau",
        "Guizhou Provincial Big Data Bureau",
        Organization.Kind.GOVERNMENT,
        "520000",
    ),
    (
        "guiyang-bigdata-office",
        "Guiyang Municipal Big Data Office",
        Organization.Kind.GOVERNMENT,
        "520100",
    ),
]

PEOPLE = [
    # username, display name, role, organization slug, staff
    ("annotator", "王小丽 Wang Xiaoli", Membership.Role.ANNOTATOR, "guiyang-data-centre", False),
    # A second annotator, so projects with an overlap of two can finish.
    ("annotator2", "张伟 Zhang Wei", Membership.Role.ANNOTATOR, "guiyang-data-centre", False),
    ("reviewer", "李强 Li Qiang", Membership.Role.REVIEWER, "guiyang-data-centre", False),
    ("manager", "陈静 Chen Jing", Membership.Role.PROJECT_MANAGER, "guiyang-data-centre", False),
    ("client", "赵敏 Zhao Min", Membership.Role.CLIENT_DEVELOPER, "qianfan-ai", False),
    ("official", "刘洋 Liu Yang", Membership.Role.OFFICIAL, "guizhou-bigdata-bureau", False),
    # A city's office: sees Guiyang only, never the rest of the province.
    (
        "official-city",
        "周丹 Zhou Dan",
        Membership.Role.OFFICIAL,
        "guiyang-bigdata-office",
        False,
    ),
    ("admin", "平台管理员 Platform admin", Membership.Role.ADMIN, "guiyang-data-centre", True),
]


@dataclass
class DemoSeedResult:
    created: int = 0
    unchanged: int = 0
    logins: list[tuple[str, str, str]] = field(default_factory=list)

    def count(self, was_created: bool) -> None:
        if was_created:
            self.created += 1
        else:
            self.unchanged += 1


@transaction.atomic
def demo_seed() -> DemoSeedResult:
    result = DemoSeedResult()
    organizations = {}
    for slug, name, kind, region_code in ORGANIZATIONS:
        organizations[slug], created = Organization.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "kind": kind, "region": Region.objects.get(code=region_code)},
        )
        result.count(created)
    for username, display_name, role, org_slug, staff in PEOPLE:
        user = User.objects.filter(username=username).first()
        result.count(user is None)
        if user is None:
            # The password is set only on creation: re-hashing it would
            # change the row (a new salt) on every run.
            user = User.objects.create_user(
                username=username,
                password=DEMO_PASSWORD,
                display_name=display_name,
                is_staff=staff,
                is_superuser=staff,
            )
        _, created = Membership.objects.get_or_create(
            user=user, organization=organizations[org_slug], role=role
        )
        result.count(created)
        result.logins.append((username, role, organizations[org_slug].name))
    return result
