"""A centre manager runs a project from the web alone, in English and Chinese.

Creates it (labels in the schema editor, Markdown instructions with their
preview), imports a delivery-review CSV with the columns of the shared
waimai_10k.csv (generated here: the test never needs the real file), starts
pre-labeling against a fake OpenAI-compatible server, watches it finish and
downloads an export. No console error on any page;
screenshots of each main page go to test-artifacts/.
"""

import csv
import io
import re
from decimal import Decimal
from importlib import import_module

import pytest
from django.apps import apps
from playwright.sync_api import expect

from annotation.models import Item, Project
from compute.models import Backend
from tenants.models import Membership
from tests.browser.conftest import ARTIFACTS
from tests.compute.fake_openai import FakeOpenAI
from tests.factories import DEFAULT_PASSWORD, annotation_project, worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REVIEWS = [
    ("1", "很快，好吃，味道足，量大"),
    ("0", "送餐太慢了，等了两个小时"),
    ("1", "味道不错，下次还点"),
    ("0", "菜都凉了，不好吃"),
    ("1", "包装很好，分量足"),
    ("0", "米饭太硬"),
]


def waimai_csv() -> bytes:
    """A file with the columns of waimai_10k.csv (label, review)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "review"])
    writer.writerows(REVIEWS)
    return out.getvalue().encode()


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_centre_manager_runs_a_project_from_the_web(page, live_server, fake, language):
    import_module("valuechain.migrations.0002_append_only_and_tiers").seed_tiers(apps, None)
    existing = annotation_project()
    existing.name = "旧项目 earlier project"
    existing.save(update_fields=["name"])
    manager = worker(existing, role=Membership.Role.PROJECT_MANAGER, display_name="陈静")
    Backend.objects.create(
        organization=existing.workforce,
        name="centre model",
        kind="vllm",
        base_url=fake.url,
        models_served=["fake-model"],
        price_input_per_million=Decimal("1.00"),
        price_output_per_million=Decimal("2.00"),
    )
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    page.context.add_cookies(
        [{"name": "django_language", "value": language, "url": live_server.url}]
    )

    page.goto("/accounts/login/")
    page.fill("#id_username", manager.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("#login-button")
    page.wait_for_url("**/")
    expect(page.locator("html")).to_have_attribute("lang", language)

    # The navigation leads to the projects.
    page.click("#nav-projects")
    expect(page.locator("#project-list")).to_contain_text("旧项目")
    shot(page, f"projects-list-{language}.png")

    # Create: labels through the editor, instructions with their preview.
    page.click("#new-project")
    page.fill("#id_name", "外卖评论情感 waimai")
    expect(page.locator("#schema-preview .label-chip")).to_have_count(2)
    page.click("#schema-add")
    row = page.locator(".schema-row").nth(2)
    row.locator("[data-key=value]").fill("neutral")
    row.locator("[data-key=title]").fill("中性 neutral")
    row.locator("[data-key=hotkey]").fill("3")
    expect(page.locator('#schema-preview [data-preview-label="neutral"]')).to_contain_text("中性")
    expect(page.locator("#id_label_schema")).to_have_value(re.compile('"neutral"'))
    page.fill("#id_instructions", "## 规则\n\n判断评论的**情感**：正面、负面或中性。")
    expect(page.locator("#instructions-preview strong")).to_have_text("情感")
    page.check("#id_decision_1")  # adaptive: the target and cap appear
    expect(page.locator("#id_target_confidence")).to_be_visible()
    expect(page.locator("#id_overlap")).to_be_hidden()
    shot(page, f"projects-create-{language}.png")
    page.click("#save-project")
    page.wait_for_url("**/projects/*/")
    project = Project.objects.get(name="外卖评论情感 waimai")
    assert project.status == Project.Status.ACTIVE and project.workforce == existing.workforce
    assert project.price_per_1k_tokens > 0
    assert [lb["value"] for lb in project.label_schema["labels"]] == [
        "positive",
        "negative",
        "neutral",
    ]

    # Import the waimai-format file, its review column as the text.
    page.set_input_files(
        "#id_file", {"name": "waimai.csv", "mimeType": "text/csv", "buffer": waimai_csv()}
    )
    page.fill("#id_text_column", "review")
    page.click("#import-start")
    expect(page.locator("#import-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#import-created")).to_have_text(str(len(REVIEWS)))
    shot(page, f"projects-import-{language}.png")
    assert Item.objects.filter(project=project).count() == len(REVIEWS)

    # Pre-label with the centre's model and watch it finish.
    page.click(f'a[href="/projects/{project.pk}/"]')
    page.click("#project-runs-link")
    page.select_option("#id_model", "fake-model")
    shot(page, f"projects-runs-{language}.png")
    page.click("#prelabel-start")
    expect(page.locator("#run-status")).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#run-cost")).to_contain_text("¥")
    shot(page, f"projects-prelabel-run-{language}.png")

    # The project page, then an export to download.
    page.goto(f"/projects/{project.pk}/")
    expect(page.locator("#count-total")).to_have_text(str(len(REVIEWS)))
    shot(page, f"projects-detail-{language}.png")
    page.select_option("#id_format", "results_jsonl")
    page.uncheck("#id_approved_only")
    page.click("#export-start")
    link = page.locator("[data-download]").first
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename.endswith(".jsonl")

    # Chromium asks for /favicon.ico on its own; the site's icon is another change.
    failed = [url for url in failed if not url.endswith("/favicon.ico")]
    assert not failed, failed
    errors = [e for e in errors if not (e.startswith("Failed to load resource") and not failed)]
    assert not errors, errors
