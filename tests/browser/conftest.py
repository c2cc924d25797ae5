"""Real headless Chromium (Debian's package) driven by Playwright.

No browser is ever downloaded: Playwright launches the system Chromium
through executable_path.
"""

from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import chromium_path

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(autouse=True)
def _orm_beside_playwright(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls
    # the tests make between browser steps are still plain synchronous calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def browser():
    # Function-scoped on purpose: Playwright's sync API leaves an event loop
    # running in this thread until it stops, and Django refuses ORM calls
    # (like the test database flush after each test) while one runs.
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium")  # the browser marker turns this into a failure in CI
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()
        # While Playwright's loop runs, Django hands this thread a separate,
        # context-local connection; close it here or it outlives the test and
        # keeps the test database from being dropped.
        connections.close_all()


@pytest.fixture
def page(browser, live_server, request):
    # Waits go through selectors and expect(), never wait_for_function: its
    # polling evaluates a string, which the Content-Security-Policy forbids.
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    context = browser.new_context(base_url=live_server.url, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
