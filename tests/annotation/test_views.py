"""The annotator and reviewer pages: who sees which project, and how they write."""

import json
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from annotation import services
from annotation.models import Annotation, Assignment, Item, Project
from tenants.models import Membership, Organization
from tests.factories import OrganizationFactory, member

pytestmark = pytest.mark.django_db

SCHEMA = {
    "labels": [{"value": "positive", "title": "正面"}, {"value": "negative", "title": "负面"}]
}


def make_project(*, workforce=None, name="外卖评论情感", **fields):
    client_org = OrganizationFactory(kind=Organization.Kind.CLIENT)
    developer = member(organization=client_org, role=Membership.Role.CLIENT_DEVELOPER)
    fields = {
        "task_type": "classification",
        "label_schema": SCHEMA,
        "status": Project.Status.ACTIVE,
        "overlap": 1,
        **fields,
    }
    return services.project_create(
        organization=client_org,
        created_by=developer,
        workforce=workforce or OrganizationFactory(kind=Organization.Kind.WORKFORCE),
        name=name,
        **fields,
    )


def worker(project, *roles):
    user = member(organization=project.workforce, role=roles[0])
    for role in roles[1:]:
        Membership.objects.create(user=user, organization=project.workforce, role=role)
    return user


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def page_config(response, element_id):
    html = response.content.decode()
    start = html.index(f'<script id="{element_id}" type="application/json">')
    start = html.index(">", start) + 1
    return json.loads(html[start : html.index("</script>", start)])


def test_pages_render_for_a_member_of_the_staffing_centre():
    project = make_project(instructions="Read the whole review.")
    user = worker(project, Membership.Role.ANNOTATOR, Membership.Role.REVIEWER)
    client = logged_in(user)

    listing = client.get("/workspace/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert project.name in html
    assert f'href="/workspace/projects/{project.pk}/"' in html
    assert f'href="/workspace/projects/{project.pk}/review/"' in html

    workspace = client.get(f"/workspace/projects/{project.pk}/")
    assert workspace.status_code == 200
    assert "Read the whole review." in workspace.content.decode()
    config = page_config(workspace, "workspace-config")
    assert config["project"]["taskType"] == "classification"
    # The schema the API validates against, hotkeys included.
    assert [(lb["value"], lb["hotkey"]) for lb in config["project"]["labelSchema"]["labels"]] == [
        ("positive", "1"),
        ("negative", "2"),
    ]
    assert config["api"]["next"] == f"/api/v1/workspace/projects/{project.pk}/next/"
    assert config["api"]["submit"] == "/api/v1/workspace/assignments/{id}/submit/"
    assert config["api"]["review"] == "/api/v1/workspace/items/{id}/review/"

    review = client.get(f"/workspace/projects/{project.pk}/review/")
    assert review.status_code == 200
    review_api = page_config(review, "review-config")["api"]
    assert review_api["reviewNext"] == f"/api/v1/workspace/projects/{project.pk}/review-next/"
    assert review_api["release"] == "/api/v1/workspace/items/{id}/release/"

    assert client.get("/workspace/me/").status_code == 200


def test_a_project_of_another_centre_is_404():
    ours = make_project()
    theirs = make_project(name="另一个中心的项目")
    user = worker(ours, Membership.Role.ANNOTATOR, Membership.Role.REVIEWER)
    client = logged_in(user)

    assert client.get(f"/workspace/projects/{theirs.pk}/").status_code == 404
    assert client.get(f"/workspace/projects/{theirs.pk}/review/").status_code == 404
    assert theirs.name not in client.get("/workspace/").content.decode()


def test_each_page_needs_the_fitting_role():
    project = make_project()
    annotator = logged_in(worker(project, Membership.Role.ANNOTATOR))
    reviewer = logged_in(worker(project, Membership.Role.REVIEWER))

    assert annotator.get(f"/workspace/projects/{project.pk}/").status_code == 200
    assert annotator.get(f"/workspace/projects/{project.pk}/review/").status_code == 404
    assert reviewer.get(f"/workspace/projects/{project.pk}/").status_code == 404
    assert reviewer.get(f"/workspace/projects/{project.pk}/review/").status_code == 200
    # Project managers review too (the API lets them); one row even with both roles.
    manager = logged_in(worker(project, Membership.Role.PROJECT_MANAGER, Membership.Role.REVIEWER))
    assert manager.get(f"/workspace/projects/{project.pk}/review/").status_code == 200
    assert manager.get(f"/workspace/projects/{project.pk}/").status_code == 404
    assert [row["project"] for row in manager.get("/workspace/").context["rows"]] == [project]
    # A client developer of the owning organization is not a worker.
    developer = Membership.objects.get(
        organization=project.organization, role=Membership.Role.CLIENT_DEVELOPER
    ).user
    assert logged_in(developer).get(f"/workspace/projects/{project.pk}/").status_code == 404


def test_only_active_projects_can_be_worked_on():
    project = make_project(status=Project.Status.PAUSED)
    client = logged_in(worker(project, Membership.Role.ANNOTATOR))
    assert client.get(f"/workspace/projects/{project.pk}/").status_code == 404
    assert project.name not in client.get("/workspace/").content.decode()


@pytest.mark.parametrize(
    "path", ["/workspace/", "/workspace/projects/{pk}/", "/workspace/projects/{pk}/review/"]
)
def test_login_required(path):
    project = make_project()
    url = path.format(pk=project.pk)
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_me_needs_a_login():
    response = Client().get("/workspace/me/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_api_writes_from_the_page_need_the_csrf_token():
    project = make_project()
    Item.objects.create(project=project, external_id="a", data={"text": "好吃"})
    client = logged_in(worker(project, Membership.Role.ANNOTATOR), enforce_csrf_checks=True)
    next_url = f"/api/v1/workspace/projects/{project.pk}/next/"

    refused = client.post(next_url)
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["errors"][0]["detail"]
    assert not Assignment.objects.exists()

    # The page sets the cookie its script sends back in X-CSRFToken.
    page = client.get(f"/workspace/projects/{project.pk}/")
    token = page.cookies["csrftoken"].value
    leased = client.post(next_url, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert leased.status_code == 200
    submit = client.post(
        f"/api/v1/workspace/assignments/{leased.json()['id']}/submit/",
        data={"answer": {"label": "positive"}, "time_spent_ms": 1200},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert submit.status_code == 201
    assert Annotation.objects.get().answer == {"label": "positive"}


def test_instructions_are_markdown_with_line_breaks_and_raw_html_escaped():
    project = make_project(
        instructions="第一行 **重点** <script>alert(1)</script>\n第二行 [x](javascript:alert(1))"
    )
    response = logged_in(worker(project, Membership.Role.ANNOTATOR)).get(
        f"/workspace/projects/{project.pk}/"
    )
    html = response.content.decode()
    assert "第一行 <strong>重点</strong> &lt;script&gt;alert(1)&lt;/script&gt;<br>" in html
    assert "<script>alert(1)</script>" not in html
    assert 'href="javascript' not in html


def test_the_project_name_is_escaped_in_the_page_config():
    project = make_project(name="</script><script>alert(1)</script>")
    response = logged_in(worker(project, Membership.Role.ANNOTATOR)).get(
        f"/workspace/projects/{project.pk}/"
    )
    assert "<script>alert(1)</script>" not in response.content.decode()
    assert page_config(response, "workspace-config")["project"]["name"] == project.name


def test_projects_list_says_when_the_tier_is_too_low():
    project = make_project(required_tier=3)
    client = logged_in(worker(project, Membership.Role.ANNOTATOR))
    html = client.get("/workspace/").content.decode()
    assert "Needs skill tier T3" in html
    assert f'href="/workspace/projects/{project.pk}/"' not in html


def test_pages_are_translated_to_simplified_chinese():
    project = make_project()
    client = logged_in(worker(project, Membership.Role.ANNOTATOR))
    client.cookies["django_language"] = "zh-hans"
    response = client.get(f"/workspace/projects/{project.pk}/")
    html = response.content.decode()
    assert 'lang="zh-hans"' in html
    assert "提交" in html and "跳过" in html and "键盘" in html
    strings = page_config(response, "workspace-config")["strings"]
    assert "此项目中已没有您可做的任务。" in html
    assert strings["saved"] == "已保存。"
    assert "工作台" in client.get("/workspace/").content.decode()


def test_home_cards_link_annotators_and_reviewers_to_the_workspace():
    project = make_project()
    user = worker(project, Membership.Role.ANNOTATOR, Membership.Role.REVIEWER)
    html = logged_in(user).get("/").content.decode()
    assert html.count('href="/workspace/" data-link="workspace"') == 2
    assert 'id="nav-workspace"' in html


def test_me_shows_the_record_and_the_reasons_of_rejections():
    project = make_project(review_rate=1)
    item = Item.objects.create(project=project, external_id="r-1", data={"text": "一般般"})
    annotator = worker(project, Membership.Role.ANNOTATOR)
    reviewer = worker(project, Membership.Role.REVIEWER)
    assignment = services.assignment_lease(project=project, annotator=annotator)
    annotation, _ = services.annotation_submit(
        assignment_id=assignment.pk,
        annotator=annotator,
        answer={"label": "positive"},
        time_spent_ms=7_200_000,
    )
    services.review_lease_take(project=project, reviewer=reviewer)
    services.review_submit(
        item_id=item.pk,
        reviewer=reviewer,
        verdict="reject",
        reason="语气是负面的 <b>",
        annotation_id=annotation.pk,
    )

    response = logged_in(annotator).get("/workspace/me/")
    html = response.content.decode()
    assert response.context["record"]["annotations"] == 1
    assert response.context["record"]["rejected"] == 1
    assert "语气是负面的 &lt;b&gt;" in html
    assert project.name in html
    assert "2.00" in html  # hours
    assert response.context["review_acceptance"] == "0.0%"


def test_me_shows_the_tier_progress_earnings_and_tier_history():
    from valuechain.models import TierChange
    from valuechain.services import ledger_post

    project = make_project()
    annotator = worker(project, Membership.Role.ANNOTATOR)
    annotator.skill_tier = 2
    annotator.save(update_fields=["skill_tier"])
    for n, cost in enumerate(["12.344999", "0.000001"]):
        ledger_post(
            idempotency_key=f"test:{n}",
            kind="annotation",
            occurred_at=timezone.now(),
            region_id=project.workforce.region_id,
            client_id=project.organization_id,
            project_id=project.pk,
            worker_id=annotator.pk,
            skill_tier=2,
            tokens_input=1000,
            revenue=Decimal(cost) * 2,
            cost=Decimal(cost),
        )
    TierChange.objects.create(
        user=annotator,
        day=timezone.localdate(),
        from_level=1,
        to_level=2,
        reason="cleared every T2 bar <b>",
    )

    response = logged_in(annotator).get("/workspace/me/")
    html = response.content.decode()

    assert "T2</span> Structured annotation" in html
    assert "Next tier: T3 Review and quality assurance" in html
    assert html.count("<progress ") == 3
    assert 'data-bar="gold_accuracy"' in html and "– of 90.0% required" in html
    assert "0 gold tasks checked, 20 needed" in html
    assert "0 of 1,000,000 required" in html  # tokens annotated (the quality record)
    # Earnings to the fen (12.345000 rounds half up), this month and in the 12-month table.
    assert "¥12.35" in html and html.count("¥0.00") >= 11
    assert "Pay: ¥1.80 per 1,000 tokens" in html  # the next tier's pay
    assert "Promoted T1 → T2" in html and "cleared every T2 bar &lt;b&gt;" in html
    standing = response.context["standing"]
    assert standing["earnings"]["this_month"]["earnings"] == Decimal("12.345000")


def test_me_says_when_there_is_no_next_tier_and_no_history_in_chinese():
    project = make_project()
    annotator = worker(project, Membership.Role.ANNOTATOR)
    annotator.skill_tier = 5
    annotator.save(update_fields=["skill_tier"])
    client = logged_in(annotator)
    client.cookies["django_language"] = "zh-hans"
    html = client.get("/workspace/me/").content.decode()
    assert "模型运营" in html and "您已处于最高等级。" in html
    assert "<progress " not in html
    assert "暂无等级变动。" in html and "本月" in html and "¥0.00" in html
