"""People and tiers for a centre's managers: its members and roles, each
annotator's tier, record and tier history, and a tier changed by hand with a
reason (valuechain.services.tier_change_manual, audited).

Another centre, or a person who is not its member, is a 404.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from tenants.models import Membership, Organization, User
from tenants.permissions import PEOPLE_MANAGERS, principal_for
from tenants.selectors import organization_members
from valuechain.permissions import can_change_tier, can_manage_people, require_can_change_tier
from valuechain.quality import quality_record
from valuechain.selectors import tier_history, tiers_ladder
from valuechain.services import tier_change_manual

from .models import Annotation
from .people_forms import TierChangeForm
from .selectors import annotator_project_records

PAGE_SIZE = 100


def _centres(user) -> list[Organization]:
    """The centres whose people user manages."""
    ids = principal_for(user).organization_ids(roles=PEOPLE_MANAGERS)
    centres = Organization.objects.filter(pk__in=ids, kind=Organization.Kind.WORKFORCE)
    return [o for o in centres.order_by("name") if can_manage_people(user, o)]


def _tier_names(tiers) -> None:
    chinese = (get_language() or "").startswith("zh")
    for tier in tiers:
        tier.name = tier.name_zh if chinese else tier.name_en


@login_required
def people(request, organization_id: int | None = None):
    centres = _centres(request.user)
    if not centres:
        raise PermissionDenied(_("The people page is for a centre's project managers and admins."))
    if organization_id is None:
        centre = centres[0]
    else:
        centre = next((c for c in centres if c.pk == organization_id), None)
        if centre is None:
            raise Http404("not a centre of yours")
    members = organization_members(organization=centre)
    page = Paginator(members, PAGE_SIZE).get_page(request.GET.get("page"))
    user_ids = [person["user"].pk for person in page.object_list]
    done = dict(
        Annotation.objects.filter(annotator_id__in=user_ids, project__workforce=centre)
        .values("annotator_id")
        .annotate(n=Count("pk"))
        .values_list("annotator_id", "n")
    )
    labels = dict(Membership.Role.choices)
    for person in page.object_list:
        person["role_labels"] = [labels[r] for r in person["roles"]]
        person["annotator"] = Membership.Role.ANNOTATOR in person["roles"]
        person["annotations"] = done.get(person["user"].pk, 0)
    return render(
        request,
        "annotation/people.html",
        {"centre": centre, "centres": centres, "page": page, "count": len(members)},
    )


@login_required
def person(request, organization_id: int, user_id: int):
    centre = next((c for c in _centres(request.user) if c.pk == organization_id), None)
    if centre is None:
        raise Http404("not a centre of yours")
    member = get_object_or_404(
        User.objects.filter(memberships__organization=centre).distinct(), pk=user_id
    )
    tiers = tiers_ladder()
    _tier_names(tiers)
    may_change = can_change_tier(request.user, centre, member)
    form = None
    status = 200
    if may_change:
        form = TierChangeForm(
            request.POST if request.method == "POST" else None,
            tiers=tiers,
            current=member.skill_tier,
        )
        if request.method == "POST" and form.is_valid():
            try:
                change = tier_change_manual(
                    organization=centre,
                    annotator=member,
                    to_level=form.cleaned_data["to_level"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(
                    request,
                    _("%(name)s moved from T%(old)s to T%(new)s.")
                    % {"name": member, "old": change.from_level, "new": change.to_level},
                )
                return redirect("person", organization_id=centre.pk, user_id=member.pk)
        if form.errors:
            status = 400
    elif request.method == "POST":
        require_can_change_tier(request.user, centre, member)  # refuses, in the rule's words
    labels = dict(Membership.Role.choices)
    roles = sorted(
        Membership.objects.filter(user=member, organization=centre).values_list("role", flat=True)
    )
    record = quality_record(annotator=member)
    current = next((t for t in tiers if t.level == member.skill_tier), None)
    return render(
        request,
        "annotation/person.html",
        {
            "centre": centre,
            "member": member,
            "role_labels": [labels[r] for r in roles],
            "is_annotator": Membership.Role.ANNOTATOR in roles,
            "tier": current,
            "record": record,
            "projects": annotator_project_records(annotator=member, workforce_id=centre.pk),
            "history": tier_history(user=member),
            "form": form,
        },
        status=status,
    )
