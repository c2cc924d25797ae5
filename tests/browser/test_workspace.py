"""The annotator workspace and the review page, driven in a real Chromium.

Each test labels with the keyboard (the mouse only to select text for spans)
and checks what the API stored in the database.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from annotation import services
from annotation.models import Annotation, Assignment, Item, Project, Review, ReviewLease
from tenants.models import Membership, Organization
from tests.factories import DEFAULT_PASSWORD, OrganizationFactory, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SENTIMENT = {
    "labels": [
        {"value": "positive", "title": "正面"},
        {"value": "negative", "title": "负面"},
        {"value": "neutral", "title": "中性"},
    ]
}
REVIEWS = ["送餐很快，味道不错。", "菜是凉的，等了一个小时。", "还行吧，没什么特别的。"]


def log_in(page, user):
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", DEFAULT_PASSWORD)
    page.click("#login-button")
    page.wait_for_url("**/")


def make_project(task_type, label_schema, datas, *, metadata=None, **fields):
    """An active project staffed by a new centre, its items, and an annotator there."""
    client_org = OrganizationFactory(kind=Organization.Kind.CLIENT)
    developer = member(organization=client_org, role=Membership.Role.CLIENT_DEVELOPER)
    workforce = OrganizationFactory(kind=Organization.Kind.WORKFORCE, name="贵阳标注中心")
    annotator = member(organization=workforce, role=Membership.Role.ANNOTATOR)
    project = services.project_create(
        organization=client_org,
        created_by=developer,
        workforce=workforce,
        name=f"{task_type} project",
        task_type=task_type,
        label_schema=label_schema,
        instructions="Label every item.\nAsk your team lead when unsure.",
        **{"status": Project.Status.ACTIVE, "overlap": 1, **fields},
    )
    items = [
        Item.objects.create(
            project=project,
            external_id=f"item-{n}",
            data=data,
            target_annotations=project.overlap,
            metadata=(metadata or {}).get(n, {}),
        )
        for n, data in enumerate(datas)
    ]
    return project, annotator, items


def open_workspace(page, project, annotator):
    log_in(page, annotator)
    page.goto(f"/workspace/projects/{project.pk}/")
    page.wait_for_selector("#workspace[data-state=ready]")


def wait_for_item(page, item):
    page.wait_for_selector(f"#workspace[data-state=ready][data-item='{item.pk}']")


def wait_for_prefetch(page):
    page.wait_for_selector("#workspace[data-prefetch=ready]")


def submitted(item):
    return Annotation.objects.get(item=item)


def assert_next_was_leased_before_submit(annotator, first, second):
    """The second task was leased while the first was on screen (prefetched)."""
    lease = Assignment.objects.get(item=second, annotator=annotator)
    assert lease.leased_at < submitted(first).created_at


def test_classification_with_digits_and_enter_and_the_next_task_is_prefetched(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": t} for t in REVIEWS]
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    assert page.text_content(".item-text") == REVIEWS[0]
    # The lease counts down from the project's lease length (15 minutes here).
    minutes, seconds = page.text_content("#lease-timer").split(":")
    assert 14 * 60 <= int(minutes) * 60 + int(seconds) <= project.lease_seconds
    assert "is-ending" not in (page.get_attribute("#lease-timer", "class") or "")
    assert "Ask your team lead when unsure." in page.inner_html("#instructions")
    assert "<br>" in page.inner_html("#instructions")

    wait_for_prefetch(page)
    assert Assignment.objects.filter(annotator=annotator).count() == 2  # the next one is held

    page.keyboard.press("2")
    assert page.get_attribute(".label-btn[data-value=negative]", "aria-pressed") == "true"
    page.keyboard.press("1")
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    assert page.text_content(".item-text") == REVIEWS[1]
    assert page.text_content("#done-count") == "1"
    assert submitted(items[0]).answer == {"label": "positive"}
    assert submitted(items[0]).time_spent_ms > 0
    assert_next_was_leased_before_submit(annotator, items[0], items[1])


def test_multi_label_digits_toggle(page):
    schema = {"labels": ["food", "service", "price", "delivery"]}
    project, annotator, items = make_project("multi_label", schema, [{"text": t} for t in REVIEWS])
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    wait_for_prefetch(page)
    assert Assignment.objects.filter(annotator=annotator).count() == 2

    for key in ["4", "1", "3", "4"]:  # delivery on, food, price, delivery off again
        page.keyboard.press(key)
    pressed = page.locator(".label-btn[aria-pressed=true]").evaluate_all(
        "buttons => buttons.map(b => b.dataset.value)"
    )
    assert pressed == ["food", "price"]
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {"labels": ["food", "price"]}
    assert_next_was_leased_before_submit(annotator, items[0], items[1])


SELECT_JS = """
([quote, occurrence]) => {
  // A selection over exact characters of the original text, made the way a
  // user's drag makes it: a DOM Range across the rendered text nodes.
  const container = document.querySelector("[data-role=span-text]");
  const full = Array.from(container.querySelectorAll(".seg")).map(s => s.textContent).join("");
  let start = -1;
  for (let i = 0; i <= occurrence; i += 1) start = full.indexOf(quote, start + 1);
  const end = start + quote.length;
  const point = (index, isEnd) => {
    for (const seg of container.querySelectorAll(".seg")) {
      const from = Number(seg.dataset.start), to = Number(seg.dataset.end);
      if (index >= from && (index < to || (isEnd && index === to))) {
        return [seg.firstChild, index - from];
      }
    }
    throw new Error("offset outside the text");
  };
  const range = document.createRange();
  range.setStart(...point(start, false));
  range.setEnd(...point(end, true));
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  return selection.toString();
}
"""

CHAR_BOX_JS = """
([quote]) => {
  // Where the first and last characters of quote are drawn, for a mouse drag.
  // (quote is made of characters of the Basic Multilingual Plane.)
  const segs = Array.from(document.querySelectorAll("[data-role=span-text] .seg"));
  const node = segs.find(s => s.textContent.includes(quote)).firstChild;
  const start = node.textContent.indexOf(quote);
  const box = (i) => {
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    const r = range.getBoundingClientRect();
    return {left: r.left, right: r.right, y: r.top + r.height / 2};
  };
  return {first: box(start), last: box(start + quote.length - 1)};
}
"""


def test_spans_in_chinese_text_store_exact_character_offsets(page):
    # An emoji (two UTF-16 units, one Python character) before the names makes
    # JavaScript string indices and Python offsets differ: the API's are Python's.
    text = "😀 张三在北京的清华大学读书，李四在上海。"
    schema = {"labels": [{"value": "PER", "title": "人名"}, "LOC", "ORG"]}
    project, annotator, items = make_project(
        "spans", schema, [{"text": text}, {"text": "王五在成都。"}, {"text": "赵六在贵阳。"}]
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    wait_for_prefetch(page)
    assert Assignment.objects.filter(annotator=annotator).count() == 2

    # 张三 with a real mouse drag, then the hotkey of PER.
    boxes = page.evaluate(CHAR_BOX_JS, ["张三"])
    page.mouse.move(boxes["first"]["left"] + 2, boxes["first"]["y"])
    page.mouse.down()
    page.mouse.move(boxes["last"]["right"] - 2, boxes["last"]["y"], steps=5)
    page.mouse.up()
    assert page.evaluate("window.getSelection().toString()") == "张三"
    page.keyboard.press("1")
    page.wait_for_selector(".seg.marked[data-tag='人名']")

    # The others with a DOM selection, over text already split into marked parts.
    for quote, key in [("北京", "2"), ("清华大学", "3"), ("李四", "1"), ("上海", "2")]:
        assert page.evaluate(SELECT_JS, [quote, 0]) == quote
        page.keyboard.press(key)
    assert page.locator(".span-list .span-chip").count() == 5
    marked = page.locator(".span-text .seg.marked").all_text_contents()
    assert marked == ["张三", "北京", "清华大学", "李四", "上海"]

    # Clicking a span removes it; Z brings it back.
    page.click(".seg.marked:has-text('上海')")
    assert page.locator(".span-list .span-chip").count() == 4
    page.keyboard.press("z")
    assert page.locator(".span-list .span-chip").count() == 5

    page.keyboard.press("Enter")
    wait_for_item(page, items[1])

    def span(quote, label):
        start = text.index(quote)
        return {"start": start, "end": start + len(quote), "label": label}

    assert submitted(items[0]).answer == {
        "spans": [
            span("张三", "PER"),
            span("北京", "LOC"),
            span("清华大学", "ORG"),
            span("李四", "PER"),
            span("上海", "LOC"),
        ]
    }
    assert submitted(items[0]).answer["spans"][0] == {"start": 2, "end": 4, "label": "PER"}
    assert_next_was_leased_before_submit(annotator, items[0], items[1])


def test_text_answer_enter_adds_a_line_and_ctrl_enter_submits(page):
    datas = [
        {"prompt": "用两句话介绍贵阳。", "system": "你是一名导游。"},
        {"prompt": "介绍郑州。"},
        {"prompt": "介绍成都。"},
    ]
    project, annotator, items = make_project("text", {"min_length": 4}, datas)
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    assert "你是一名导游。" in page.text_content(".data-system")
    expect(page.locator("[data-field=text]")).to_be_focused()
    wait_for_prefetch(page)
    assert Assignment.objects.filter(annotator=annotator).count() == 2

    page.keyboard.type("贵阳是贵州的省会。")
    page.keyboard.press("Enter")
    page.keyboard.type("夏天很凉爽，Skip 和 Zoo 也能输入。")
    assert page.get_attribute("#workspace", "data-item") == str(items[0].pk)
    page.keyboard.press("Control+Enter")

    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {
        "text": "贵阳是贵州的省会。\n夏天很凉爽，Skip 和 Zoo 也能输入。"
    }
    assert_next_was_leased_before_submit(annotator, items[0], items[1])


PAIRS = [
    {"prompt": "什么是 token？", "response_a": "文本的基本单位。", "response_b": "一种加密货币。"},
    {"prompt": "1+1=?", "response_a": "2", "response_b": "3"},
    {"prompt": "天空是什么颜色？", "response_a": "蓝色", "response_b": "绿色"},
]


def test_preference_side_by_side_with_keys(page):
    project, annotator, items = make_project(
        "preference", {"allow_tie": True, "rationale": "optional"}, PAIRS
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    cards = page.locator(".pref-card")
    assert cards.count() == 2
    first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert first["x"] < second["x"] and abs(first["y"] - second["y"]) < 2  # side by side
    wait_for_prefetch(page)
    assert Assignment.objects.filter(annotator=annotator).count() == 2

    page.keyboard.press("3")
    assert page.get_attribute(".pref-tie", "aria-pressed") == "true"
    page.keyboard.press("2")
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {"choice": "b"}
    assert_next_was_leased_before_submit(annotator, items[0], items[1])


def test_a_validation_error_from_the_api_is_shown_next_to_the_control(page):
    project, annotator, items = make_project(
        "preference", {"allow_tie": False, "rationale": "required"}, PAIRS
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    assert page.locator(".pref-tie").count() == 0

    page.keyboard.press("3")  # no tie in this project: nothing happens
    page.keyboard.press("1")
    page.keyboard.press("Enter")

    error = page.locator("[data-error-for=rationale]")
    error.wait_for()
    expect(error).not_to_be_empty()
    assert "rationale" in error.text_content()
    assert page.get_attribute("textarea[data-field=rationale]", "aria-invalid") == "true"
    assert not Annotation.objects.exists()

    # The rationale box has the focus: type, then Ctrl+Enter.
    expect(page.locator("[data-field=rationale]")).to_be_focused()
    page.keyboard.type("A 准确，B 错误。")
    page.keyboard.press("Control+Enter")
    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {"choice": "a", "rationale": "A 准确，B 错误。"}


def test_rating_digit_picks_the_score(page):
    schema = {"min": 1, "max": 5, "rubric": {"1": "无法使用", "5": "完美"}}
    datas = [
        {"prompt": "写一首诗。", "response": "床前明月光。"},
        {"response": "还行"},
        {"response": "不错"},
    ]
    project, annotator, items = make_project("rating", schema, datas)
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    assert "完美" in page.text_content(".score-btn[data-value='5']")
    wait_for_prefetch(page)
    assert Assignment.objects.filter(annotator=annotator).count() == 2

    page.keyboard.press("4")
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {"rating": 4}
    assert_next_was_leased_before_submit(annotator, items[0], items[1])


def test_skip_with_s(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": t} for t in REVIEWS]
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    wait_for_prefetch(page)

    page.keyboard.press("s")
    wait_for_item(page, items[1])
    assert Assignment.objects.get(item=items[0]).status == Assignment.Status.SKIPPED
    assert not Annotation.objects.exists()
    assert page.text_content("#done-count") == "0"


def test_undo_with_z(page):
    schema = {"labels": ["food", "service", "price"]}
    project, annotator, items = make_project("multi_label", schema, [{"text": t} for t in REVIEWS])
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])

    page.keyboard.press("1")
    page.keyboard.press("2")
    page.keyboard.press("3")
    page.keyboard.press("z")
    page.keyboard.press("z")
    pressed = page.locator(".label-btn[aria-pressed=true]").evaluate_all(
        "buttons => buttons.map(b => b.dataset.value)"
    )
    assert pressed == ["food"]
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {"labels": ["food"]}
    # Each item has its own undo history: nothing to undo on the new one.
    page.keyboard.press("z")
    assert page.text_content("#status") == "Nothing to undo."


def test_no_more_tasks(page):
    project, annotator, items = make_project("classification", SENTIMENT, [{"text": REVIEWS[0]}])
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    page.wait_for_selector("#workspace[data-prefetch=none]")  # the API said 204

    page.keyboard.press("3")
    page.keyboard.press("Enter")

    page.wait_for_selector("#workspace[data-state=empty]")
    assert page.is_visible("#empty")
    assert "No more tasks for you in this project" in page.text_content("#empty")
    assert page.get_attribute("#empty a", "href") == "/workspace/"
    assert page.is_hidden("#submit-button")
    assert submitted(items[0]).answer == {"label": "neutral"}


def test_a_refusal_from_the_api_is_explained(page):
    project, annotator, _ = make_project(
        "classification", SENTIMENT, [{"text": REVIEWS[0]}], required_tier=3
    )
    log_in(page, annotator)
    page.goto(f"/workspace/projects/{project.pk}/")

    page.wait_for_selector("#workspace[data-state=error]")
    message = page.text_content("#failure")
    assert "You cannot work on this project" in message and "T3" in message
    assert page.get_attribute("#failure a", "href") == "/workspace/"
    assert not Assignment.objects.exists()


def test_the_model_suggestion_is_prefilled_with_its_confidence(page):
    suggestion = {"answer": {"label": "negative"}, "confidence": 0.83, "model": "demo"}
    project, annotator, items = make_project(
        "classification",
        SENTIMENT,
        [{"text": t} for t in REVIEWS],
        metadata={0: {"suggestion": suggestion}},
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])

    assert "83%" in page.text_content("#suggestion")
    assert "demo" in page.text_content("#suggestion")
    # The meter's width is set through the CSSOM (no style attribute under the CSP).
    assert page.evaluate("document.querySelector('.meter-fill').style.width") == "83%"
    assert page.get_attribute(".label-btn[data-value=negative]", "aria-pressed") == "true"
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    assert submitted(items[0]).answer == {"label": "negative"}
    # The next item has no suggestion: the bar keeps its place but shows nothing.
    assert page.get_attribute("#suggestion", "class") == "ws-suggestion is-empty"
    assert page.locator(".label-btn[aria-pressed=true]").count() == 0


def test_an_unsure_suggestion_is_a_hint_and_saved_speaks_of_the_previous_task(page):
    unsure = {"answer": {"label": "negative"}, "confidence": 0.05, "model": "demo"}
    project, annotator, items = make_project(
        "classification",
        SENTIMENT,
        [{"text": t} for t in REVIEWS],
        metadata={1: {"suggestion": unsure}},
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    page.click(".label-btn[data-value=positive]")
    page.keyboard.press("Enter")

    wait_for_item(page, items[1])
    # Under the project's floor (0.6 by default): shown, named, but nothing pre-filled.
    hint = page.text_content("#suggestion")
    assert "5%" in hint and "60%" in hint
    assert page.get_attribute("#suggestion", "data-prefilled") == "false"
    assert page.locator(".label-btn[aria-pressed=true]").count() == 0
    # The previous task's save is named as such, and goes once this one is touched.
    assert page.text_content("#status") == "Previous task saved."
    page.click(".label-btn[data-value=positive]")
    assert page.text_content("#status") == ""


def test_language_switch_shows_the_workspace_in_chinese(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": t} for t in REVIEWS]
    )
    log_in(page, annotator)
    page.click(".role-annotator a[data-link=workspace]")
    page.wait_for_url("**/workspace/")
    page.click(f"tr[data-project='{project.pk}'] a[data-action=annotate]")
    wait_for_item(page, items[0])
    assert page.text_content("#submit-button").startswith("Submit")

    page.select_option("#language-select", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    page.wait_for_selector("#workspace[data-state=ready]")
    assert page.text_content("#submit-button").startswith("提交")
    assert page.text_content("#skip-button").startswith("跳过")
    assert page.text_content("#keys-heading") == "键盘"
    assert page.text_content("#instructions-heading") == "标注说明"
    titles = page.locator(".label-btn .label-title").all_text_contents()
    assert titles == ["正面", "负面", "中性"]
    page.keyboard.press("Enter")  # nothing chosen: a message in Chinese, nothing sent
    expect(page.locator("[data-error-for=label]")).to_have_text("请先选择一个标签。")


def test_review_accept_and_reject_with_a_reason(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": t} for t in REVIEWS], review_rate=1
    )
    reviewer = member(organization=project.workforce, role=Membership.Role.REVIEWER)
    # The reviewer also annotates: an item they annotated never reaches their queue.
    Membership.objects.create(
        user=reviewer, organization=project.workforce, role=Membership.Role.ANNOTATOR
    )
    answers = {annotator: ["positive", "positive"], reviewer: ["neutral"]}
    for user, labels in answers.items():
        for label in labels:
            lease = services.assignment_lease(project=project, annotator=user)
            services.annotation_submit(
                assignment_id=lease.pk, annotator=user, answer={"label": label}, time_spent_ms=3000
            )
    assert set(Item.objects.values_list("status", flat=True)) == {Item.Status.IN_REVIEW}
    own = Annotation.objects.get(annotator=reviewer).item

    log_in(page, reviewer)
    page.goto(f"/workspace/projects/{project.pk}/review/")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    assert page.text_content("#queue-count") == "2"
    # The item is leased to this reviewer, with the lease's countdown shown.
    lease = ReviewLease.objects.get(reviewer=reviewer)
    assert (lease.item_id, lease.status) == (items[0].pk, ReviewLease.Status.LEASED)
    assert page.text_content("#lease-timer") not in ("", "—")
    assert REVIEWS[0] in page.text_content("#review-item")
    assert page.locator(".annotation-card").count() == 1
    assert "正面" in page.text_content(".annotation-card")
    assert "100%" in page.text_content("#review-result")

    page.keyboard.press("a")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[1].pk}']")
    assert page.text_content("#queue-count") == "1"

    page.keyboard.press("r")
    page.wait_for_selector("#reject-dialog[open]")
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.press("Control+Enter")  # no reason yet
    assert page.text_content("[data-error-for=reason]") == "Say why the annotation is rejected."
    page.keyboard.type("菜是凉的，应为负面。")
    page.keyboard.press("Control+Enter")

    page.wait_for_selector("#review[data-state=empty]")
    assert page.is_visible("#empty")
    assert page.text_content("#reviewed-count") == "2"

    accepted = Review.objects.get(item=items[0])
    assert accepted.verdict == "accept" and accepted.reviewer == reviewer
    assert Item.objects.get(pk=items[0].pk).status == Item.Status.DONE
    rejected = Review.objects.get(item=items[1])
    assert rejected.verdict == "reject"
    assert rejected.reason == "菜是凉的，应为负面。"
    assert rejected.annotation == Annotation.objects.get(item=items[1])
    assert rejected.annotation.status == Annotation.Status.REJECTED
    assert not Review.objects.filter(item=own).exists()
    assert own.pk not in (items[0].pk, items[1].pk)


def test_review_later_releases_the_item_and_brings_it_back_last(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": t} for t in REVIEWS[:2]], review_rate=1
    )
    for _ in items:
        lease = services.assignment_lease(project=project, annotator=annotator)
        services.annotation_submit(
            assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
        )
    reviewer = member(organization=project.workforce, role=Membership.Role.REVIEWER)

    log_in(page, reviewer)
    page.goto(f"/workspace/projects/{project.pk}/review/")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    page.keyboard.press("n")  # later: released for others, back to this reviewer last
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[1].pk}']")
    released = ReviewLease.objects.get(item=items[0])
    assert released.status == ReviewLease.Status.RELEASED
    page.reload()  # a reload shows the held item again
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[1].pk}']")
    page.keyboard.press("a")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    page.keyboard.press("a")
    page.wait_for_selector("#review[data-state=empty]")
    assert Review.objects.filter(reviewer=reviewer).count() == 2


def test_review_of_a_lapsed_lease_says_so_and_offers_the_next_item(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": REVIEWS[0]}], review_rate=1
    )
    lease = services.assignment_lease(project=project, annotator=annotator)
    services.annotation_submit(
        assignment_id=lease.pk, annotator=annotator, answer={"label": "positive"}
    )
    reviewer = member(organization=project.workforce, role=Membership.Role.REVIEWER)

    log_in(page, reviewer)
    page.goto(f"/workspace/projects/{project.pk}/review/")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    ReviewLease.objects.filter(reviewer=reviewer).update(expires_at=timezone.now())
    page.keyboard.press("a")
    page.wait_for_selector("#review[data-mode=lost]")
    assert "expired" in page.text_content("#form-error")
    assert not Review.objects.exists()
    page.click("#form-error button")  # the next item: this one, leased again
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    page.keyboard.press("a")
    page.wait_for_selector("#review[data-state=empty]")
    assert Review.objects.get().reviewer == reviewer


def test_review_reject_names_the_annotation_with_a_digit(page):
    project, first, items = make_project(
        "classification", SENTIMENT, [{"text": REVIEWS[1]}], overlap=2, review_rate=1
    )
    second = member(organization=project.workforce, role=Membership.Role.ANNOTATOR)
    for user, label in [(first, "positive"), (second, "negative")]:
        lease = services.assignment_lease(project=project, annotator=user)
        services.annotation_submit(assignment_id=lease.pk, annotator=user, answer={"label": label})
    wrong = Annotation.objects.get(annotator=first)
    reviewer = member(organization=project.workforce, role=Membership.Role.REVIEWER)

    log_in(page, reviewer)
    page.goto(f"/workspace/projects/{project.pk}/review/")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    cards = page.locator(".annotation-card")
    assert cards.count() == 2
    first_box, second_box = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert first_box["x"] < second_box["x"] and first_box["y"] == second_box["y"]  # side by side
    assert "qwen" not in page.text_content("#review-body")  # no suggestion on this item
    assert page.is_hidden("#review-suggestion")

    page.keyboard.press("r")
    page.wait_for_selector("#reject-dialog[open]")
    page.keyboard.press("Control+Enter")  # neither which nor why yet
    assert page.text_content("[data-error-for=annotation]") == "Choose which annotation to reject."
    page.keyboard.press("Escape")  # cancel, then start again
    page.wait_for_selector("#review[data-mode=view]")
    page.keyboard.press("r")
    page.wait_for_selector("#reject-dialog[open]")
    page.keyboard.press("1")  # the first annotation; the reason box takes the focus
    expect(page.locator("#reject-reason")).to_be_focused()
    page.keyboard.type("这条评论是负面的。")
    page.keyboard.press("Control+Enter")

    page.wait_for_selector("#review[data-state=empty]")
    review = Review.objects.get(item=items[0])
    assert (review.verdict, review.annotation, review.reason) == (
        "reject",
        wrong,
        "这条评论是负面的。",
    )
    assert Annotation.objects.get(annotator=second).status == Annotation.Status.SUBMITTED


def test_review_correct_uses_the_answer_editor(page):
    project, annotator, items = make_project(
        "rating", {"min": 1, "max": 5}, [{"response": "还可以。"}], review_rate=1
    )
    reviewer = member(organization=project.workforce, role=Membership.Role.REVIEWER)
    lease = services.assignment_lease(project=project, annotator=annotator)
    services.annotation_submit(assignment_id=lease.pk, annotator=annotator, answer={"rating": 5})

    log_in(page, reviewer)
    page.goto(f"/workspace/projects/{project.pk}/review/")
    page.wait_for_selector(f"#review[data-mode=view][data-item='{items[0].pk}']")
    page.keyboard.press("c")
    page.wait_for_selector("#review[data-mode=correct]")
    assert page.get_attribute(".score-btn[data-value='5']", "aria-pressed") == "true"
    page.keyboard.press("3")
    page.keyboard.press("Enter")

    page.wait_for_selector("#review[data-state=empty]")
    review = Review.objects.get(item=items[0])
    assert review.verdict == "correct"
    assert review.corrected_answer == {"rating": 3}
    assert Item.objects.get(pk=items[0].pk).result.answer == {"rating": 3}


def test_the_lease_countdown_warns_in_its_last_minute(page):
    project, annotator, items = make_project(
        "classification", SENTIMENT, [{"text": t} for t in REVIEWS], lease_seconds=45
    )
    open_workspace(page, project, annotator)
    wait_for_item(page, items[0])
    page.wait_for_selector("#lease-timer.is-ending")
    minutes, seconds = page.text_content("#lease-timer").split(":")
    assert minutes == "0" and 0 < int(seconds) <= 45
