"""Every page of the app under the Content-Security-Policy, in real Chromium.

Each page is visited as a role that uses it and worked a little (charts
hovered, an answer picked, the API docs expanded); the test fails on any CSP
violation, seen either as a `securitypolicyviolation` event in the page or as
Chromium's console report of one.
"""

from importlib import import_module

import pytest
from django.urls import reverse

from annotation import services
from compute.models import Backend
from tenants.demo import DEMO_PASSWORD
from tenants.demo import demo_seed as tenants_seed
from tenants.models import Membership, User
from tests.browser.test_workspace import SENTIMENT, make_project
from tests.factories import DEFAULT_PASSWORD, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Recorded in every document before its own scripts run (Playwright's init
# scripts are not subject to the page's policy).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def demo():
    from django.apps import apps

    from kpireports import demo as kpi_demo
    from tenants.services import regions_sync

    regions_sync()
    import_module("valuechain.migrations.0002_append_only_and_tiers").seed_tiers(apps, None)
    tenants_seed()
    import_module("compute.demo").demo_seed()
    kpi_demo.demo_seed()


class Watched:
    """A page whose CSP violations and document headers are collected."""

    def __init__(self, page):
        self.page = page
        self.console: list[str] = []
        self.documents: list[tuple[str, str | None]] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def _response(self, response):
        if response.request.resource_type == "document":
            self.documents.append((response.url, response.headers.get("content-security-policy")))

    def visit(self, path, ready=None, expected=(), timeout=None):
        self.page.goto(path)
        if ready:
            self.page.wait_for_selector(ready, timeout=timeout)
        self.check(path, expected)

    def check(self, where, expected=()):
        self.page.wait_for_timeout(150)  # let late reports arrive
        events = self.page.evaluate("window.__csp || []")
        events = [e for e in events if not any(x in e for x in expected)]
        console = [m for m in self.console if not any(x in m for x in expected)]
        self.console.clear()
        assert not events, f"{where}: {events}"
        assert not console, f"{where}: {console}"
        for url, policy in self.documents:
            assert policy, f"{url} has no Content-Security-Policy"
            assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        self.documents.clear()

    def log_in(self, username, password):
        self.page.context.clear_cookies()
        self.visit("/accounts/login/", "#login-button")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("#login-button")
        self.page.wait_for_url("**/")
        self.check(f"home of {username}")


def test_the_site_policy_forbids_inline_script_and_style(client):
    policy = client.get("/accounts/login/")["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split("; ") if part.strip()
    )
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"] and directives["frame-ancestors"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"] and directives["form-action"] == ["'self'"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_every_page_loads_without_a_csp_violation(page, demo):
    w = Watched(page)
    suggestion = {"answer": {"label": "negative"}, "confidence": 0.6, "model": "demo"}
    project, annotator, _ = make_project(
        "classification",
        SENTIMENT,
        [{"text": f"评论 {n}"} for n in range(4)],
        metadata={n: {"suggestion": suggestion} for n in range(4)},
        review_rate=1,
    )
    lease = services.assignment_lease(project=project, annotator=annotator)
    services.annotation_submit(
        assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
    )
    reviewer = member(organization=project.workforce, role=Membership.Role.REVIEWER)
    manager = member(organization=project.workforce, role=Membership.Role.PROJECT_MANAGER)
    Backend.objects.create(
        organization=project.workforce, name="gy-vllm", base_url="http://10.0.0.5:8000/v1"
    )

    w.visit("/accounts/login/", "#login-button")
    w.visit("/no-such-page/", "#error-page")

    # The annotator: workspace list, the labeling page (answer picked), their standing.
    w.log_in(annotator.username, DEFAULT_PASSWORD)
    w.visit("/workspace/", "main")
    w.visit(f"/workspace/projects/{project.pk}/", "#workspace[data-state=ready] .meter-fill")
    page.keyboard.press("1")
    w.check("labeling page after picking an answer")
    w.visit("/workspace/me/", "main")
    w.visit("/reports/", "#error-page")  # an annotator is refused, styled

    # The reviewer: the review page with an item on it.
    w.log_in(reviewer.username, DEFAULT_PASSWORD)
    w.visit(f"/workspace/projects/{project.pk}/review/", "#review[data-mode=view]")

    # The centre's manager: the backends page and the API tokens page.
    w.log_in(manager.username, DEFAULT_PASSWORD)
    w.visit("/compute/backends/", "#backend-table")
    page.click("[data-backend] details.retire summary")
    w.check("backends page with the retire confirmation open")
    w.visit(reverse("api-tokens"), "main form")
    w.visit(reverse("people"), "#people-table")
    w.visit(reverse("person", args=[project.workforce_id, annotator.pk]), "#tier-form")

    # The client: their projects and a monthly statement.
    w.log_in(project.created_by.username, DEFAULT_PASSWORD)
    w.visit(reverse("statements"), "#statement-projects")
    w.visit(reverse("statement", args=[project.pk]), "#statement-lines")

    # An official: the dashboard, its charts drawn and a tooltip shown.
    w.log_in("official", DEMO_PASSWORD)
    w.visit("/reports/", "#chart-volume[data-rendered=true] canvas")
    page.wait_for_selector("#chart-map[data-rendered=true] canvas")
    for chart in ("chart-volume", "chart-map"):
        box = page.locator(f"#{chart} canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_timeout(300)
    w.check("dashboard with a tooltip")
    w.visit("/reports/410000/", "#error-page")  # outside the jurisdiction

    # The API docs: Swagger UI with an operation opened.
    w.visit("/api/docs/", ".opblock", timeout=60_000)
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock-body")
    w.check("Swagger UI with an operation open")

    # Platform staff: the admin's index, a list and a change form.
    User.objects.filter(username="admin").update(is_staff=True, is_superuser=True)
    w.log_in("admin", DEMO_PASSWORD)
    w.visit("/admin/", "#content")
    w.visit("/admin/tenants/organization/", "#result_list")
    w.visit("/admin/tenants/organization/add/", "form")
    w.visit("/compute/backends/", "#backend-table")
