"""The web console in a real browser (Debian's chromium driven by Playwright) against the whole
platform started here: assignment, ingest, analysis (1 s interval) and the console, on free
ports, with the session's PostgreSQL and Redis.

One suite start is shared by the module. Each page is screenshotted at 1280×800 and 390×844
under tests/e2e/artifacts and checked by axe-core (no serious or critical violation).

Every figure the page shows comes from the services: the decision state, per-scale estimates
with their tests, the interval each verdict is decided on, the diagnostics, the exposure
timeline and the alerts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from dash_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    create_experiment,
    create_metric,
    experiment_status,
    new_context,
    send_stray_events,
    send_traffic,
    shoot,
    sign_in,
    stop_started,
)
from playwright.sync_api import Browser, Page, expect, sync_playwright

from support.suite import Suite, create_key, start_suite
from verdict.v1 import experiment_pb2
from verdict_platform.roles import Role
from verdict_platform.settings import Settings

WAIT_MS = 30_000
violations: dict[str, list[object]] = {}


@pytest.fixture(scope="module")
def suite(settings: Settings) -> Iterator[Suite]:
    running = start_suite(settings, analysis_interval_s=1.0)
    try:
        create_metric(running, "purchase_rate", "purchase")
        yield running
        stop_started(running)
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def admin(browser: Browser, suite: Suite) -> Iterator[Page]:
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, suite, suite.admin_key)
    yield page
    context.close()


def check(page: Page, name: str) -> None:
    """Screenshots at both sizes and axe-core: no serious or critical violation."""
    found = shoot(page, name)
    assert found == [], f"{name}: {found}"


def test_journey_create_start_watch_live_and_stop(admin: Page, suite: Suite) -> None:
    page = admin

    # A metric through the catalog page.
    page.goto(f"{suite.url}/metrics/new")
    check(page, "metric-new")
    page.fill("#f-key", "thumbs_up_rate")
    page.fill("#f-name", "Thumbs up")
    page.fill("#f-source-event_name", "thumbs_up")
    page.click("button:has-text('Create metric')")
    page.wait_for_url(f"{suite.url}/metrics")
    expect(page.locator("table")).to_contain_text("thumbs_up_rate")
    check(page, "metrics")
    page.click("a[aria-label='Edit thumbs_up_rate']")  # UpdateMetric, through the same form
    page.fill("#f-name", "Thumbs up (any)")
    page.select_option("#f-direction", "increase")
    page.click("button:has-text('Save changes')")
    page.wait_for_url(f"{suite.url}/metrics")
    expect(page.locator("tr", has_text="thumbs_up_rate")).to_contain_text("Thumbs up (any)")

    # The step-by-step form: overview, variants (a JSON mistake caught as you type).
    page.goto(f"{suite.url}/experiments/new")
    check(page, "experiment-new")
    page.fill("#f-key", "Console Journey")  # not a slug: the API will say so
    page.fill("#f-name", "Console journey")
    page.click("[data-step-next]")
    payload = page.locator("#f-variants-1-payload")
    payload.fill('{"model": "gpt-4o-mini",')
    expect(page.locator("#f-variants-1-payload-error")).to_contain_text("not valid JSON")
    page.click("[data-goto-step=metrics]")
    page.select_option("#f-metric_role-purchase_rate", "primary")
    page.select_option("#f-metric_role-thumbs_up_rate", "guardrail")

    # The sample-size calculator answers through CalculateSampleSize and follows the inputs.
    page.click("[data-goto-step=plan]")
    page.fill("#f-analysis_plan-segments", "country")
    per_arm = page.locator("[data-calc=per-arm]")
    expect(per_arm).to_have_text(re.compile(r"^[\d,]+$"), timeout=WAIT_MS)
    before = int(per_arm.inner_text().replace(",", ""))
    page.fill("#f-calc-minimum_detectable_effect", "0.2")
    expect(per_arm).not_to_have_text(f"{before:,}", timeout=WAIT_MS)
    assert int(per_arm.inner_text().replace(",", "")) < before
    expect(page.locator("[data-calc=days]")).to_contain_text("day")
    check(page, "experiment-new-plan")

    # Saving with the broken JSON: the error beside its field, the rest of the form kept.
    page.click("[data-goto-step=review]")
    page.click("button:has-text('Save as draft')")
    expect(page.locator("#f-variants-1-payload-error")).to_contain_text("not valid JSON")
    expect(page.locator("#f-name")).to_have_value("Console journey")
    expect(page.locator("#f-metric_role-purchase_rate")).to_have_value("primary")
    # Fixed; the key is still not a slug: the API's BadRequest lands beside the key.
    page.fill("#f-variants-1-payload", '{"model": "gpt-4o-mini", "prompt_version": "v7"}')
    page.click("[data-goto-step=review]")
    page.click("button:has-text('Save as draft')")
    expect(page.locator("#f-key-error")).to_be_visible()
    expect(page.locator("#f-key")).to_have_attribute("aria-invalid", "true")
    page.fill("#f-key", "console-journey")
    page.click("[data-goto-step=review]")
    review = page.locator("#review")
    expect(review).to_contain_text("console-journey", timeout=WAIT_MS)
    expect(review).to_contain_text("gpt-4o-mini")
    check(page, "experiment-new-review")
    page.click("button:has-text('Save as draft')")
    page.wait_for_url(f"{suite.url}/experiments/console-journey")
    expect(page.locator("#header-status")).to_contain_text("draft")

    # Start, with a reason.
    page.click("button:has-text('Start experiment')")
    page.fill("#start-reason", "browser journey")
    page.click("#start-dialog button[type=submit]")
    expect(page.locator("#header-status")).to_contain_text("running")

    # Traffic through the real services; the Results tab updates by itself.
    page.evaluate("window.__sameDocument = true")
    table = page.locator(".results-table").first
    treated = 0
    for _ in range(3):  # in waves, so that the over-time chart has several points
        per_variant = send_traffic(
            suite, "console-journey", 150, "purchase", {"control": 0.10, "treatment": 0.30}
        )
        treated += per_variant["treatment"]
        expect(table).to_contain_text(f"n {treated:,}", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True  # no reload: the stream swapped it in
    expect(page.locator("[data-chart='forest-decision'][data-drawn=true] canvas")).to_be_visible()
    # The decision state as the analysis states it: 10 % against 30 % on 450 units per arm is
    # a win even on the anytime-valid, Holm-adjusted interval.
    # The decision state as the analysis states it: 10 % against 30 % on 450 units is not yet a
    # difference on the anytime-valid, Holm-adjusted interval (tightest at 5,000 units).
    panel = page.locator(".decision-panel")
    expect(panel.locator(".badge")).to_have_text("Keep running")
    expect(panel).to_contain_text("450 of ")
    expect(panel.locator("dt")).to_have_text(["Time left", "Units", "Per day"])
    row = table.locator("tr", has_text="Purchase rate")
    expect(row).to_contain_text("delta method · anytime-valid")
    expect(row).to_contain_text("decided on: relative · anytime-valid · adjusted [")
    expect(row).to_contain_text("fixed-horizon")  # the Bayesian chance beside anytime figures
    expect(row.locator(".verdict")).to_have_text("inconclusive")
    page.click("label[for=scale-absolute]")
    expect(row).to_contain_text("z (unpooled) · anytime-valid")
    page.click("label[for=scale-relative]")
    expect(page.locator("#live-status")).to_contain_text("Live")
    expect(page.locator(".results-meta")).to_contain_text("Holm")
    expect(page.locator(".results-meta")).to_contain_text("sequential intervals")
    check(page, "experiment-results")

    # The segment selector offers what the analysis broke down (ListSegments); choosing one
    # shows that segment's results.
    expect(page.locator("#segment-select option[value='country=FR']")).to_have_count(
        1, timeout=WAIT_MS
    )
    page.select_option("#segment-select", "country=FR")
    page.wait_for_url(re.compile(r"segment=country%3DFR"))
    expect(page.locator(".results-meta")).to_contain_text("segment country = FR")

    page.goto(f"{suite.url}/experiments/console-journey?tab=over-time")
    expect(page.locator("[data-chart='overtime-data'][data-drawn=true] canvas")).to_be_visible()
    check(page, "experiment-over-time")
    page.goto(f"{suite.url}/experiments/console-journey?tab=health")
    expect(page.locator(".health")).to_contain_text("sample-ratio mismatch")
    check(page, "experiment-health")
    page.goto(f"{suite.url}/experiments/console-journey?tab=export")
    with page.expect_download() as download:
        page.click("a:has-text('Download CSV')")
    csv_text = download.value.path().read_text()
    assert csv_text.splitlines()[0].startswith("experiment,snapshot_id")
    assert "console-journey,", "purchase_rate" in csv_text
    check(page, "experiment-export")

    # Stop with a reason: the audit log shows it.
    page.click("button:has-text('Stop experiment')")
    page.select_option("#stop-decision", "ship")
    page.select_option("#stop-ship", "treatment")
    page.fill("#stop-reason", "treatment converts better in the browser journey")
    page.click("#stop-dialog button[type=submit]")
    expect(page.locator("#header-status")).to_contain_text("stopped")
    assert experiment_status(suite, "console-journey") == experiment_pb2.EXPERIMENT_STATUS_STOPPED
    page.goto(f"{suite.url}/experiments/console-journey?tab=history")
    log = page.locator(".audit-log")
    expect(log).to_contain_text("experiment.stopped")
    expect(log).to_contain_text("treatment converts better in the browser journey")
    expect(log).to_contain_text(suite.admin_name)
    check(page, "experiment-history")
    page.goto(f"{suite.url}/experiments")
    expect(page.locator("table.list")).to_contain_text("Console journey")
    check(page, "experiments-list")


def test_health_draws_exposures_per_day_and_history_lists_alerts(admin: Page, suite: Suite) -> None:
    key = create_experiment(suite, "purchase_rate")
    send_traffic(suite, key, 40, "purchase", {"control": 0.1, "treatment": 0.1})
    page = admin
    page.goto(f"{suite.url}/experiments/{key}?tab=health")
    chart = page.locator("[data-chart=exposures-data]")
    expect(chart.locator("canvas")).to_have_count(1, timeout=WAIT_MS)
    timeline = page.locator("#exposures-data").text_content() or ""
    assert "control" in timeline and "treatment" in timeline
    page.goto(f"{suite.url}/experiments/{key}?tab=history")
    expect(page.get_by_text("No alert raised.")).to_be_visible(timeout=WAIT_MS)


def test_health_counts_the_events_the_analysis_left_out(admin: Page, suite: Suite) -> None:
    # An event name of its own, so that no other test's events count as "never exposed".
    event = f"stray_{secrets.token_hex(3)}"
    create_metric(suite, event, event)
    key = create_experiment(suite, event)
    send_traffic(suite, key, 30, event, {"control": 0.2, "treatment": 0.2})
    send_stray_events(suite, key, event, ghosts=3, early=2)
    page = admin
    page.goto(f"{suite.url}/experiments/{key}?tab=health")
    # The tab follows each new snapshot by itself; the counts settle once the early units'
    # exposures are stored (until then their events count as from units never exposed).
    cells = page.locator("table.diagnostics tr", has_text=event).locator("td")
    expect(cells.nth(0)).to_have_text("2", timeout=WAIT_MS)
    expect(cells.nth(1)).to_have_text("3", timeout=WAIT_MS)
    expect(cells.nth(2)).to_have_text("0")
    expect(page.locator("[data-figure=multiple-exposures]")).to_have_text("0")
    expect(page.locator("[data-not-available=diagnostics]")).to_have_count(0)


def test_read_key_sees_everything_and_changes_nothing(
    browser: Browser, suite: Suite, settings: Settings
) -> None:
    running = create_experiment(suite, "purchase_rate")
    draft = create_experiment(suite, "purchase_rate", start=False)
    _, read_key = create_key(settings, Role.READ)
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, suite, read_key)
    expect(page.locator("a:has-text('New experiment')")).to_have_count(0)
    expect(page.locator("nav a:has-text('API keys')")).to_have_count(0)
    page.goto(f"{suite.url}/experiments/{running}")
    expect(page.locator("h1")).to_contain_text(running)
    expect(page.locator("button:has-text('Stop experiment')")).to_have_count(0)
    page.goto(f"{suite.url}/experiments/{draft}")
    expect(page.locator("button:has-text('Start experiment')")).to_have_count(0)
    # Forged requests carrying the read session's valid CSRF token: refused by the server.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    stop = page.request.post(
        f"{suite.url}/experiments/{running}/stop",
        form={"csrf_token": token or "", "reason": "forged"},
    )
    start = page.request.post(
        f"{suite.url}/experiments/{draft}/start",
        form={"csrf_token": token or "", "reason": "forged"},
    )
    assert (stop.status, start.status) == (403, 403)
    assert experiment_status(suite, running) == experiment_pb2.EXPERIMENT_STATUS_RUNNING
    assert experiment_status(suite, draft) == experiment_pb2.EXPERIMENT_STATUS_DRAFT
    assert page.goto(f"{suite.url}/keys").status == 403
    context.close()


def test_without_a_session_pages_redirect_to_sign_in(browser: Browser, suite: Suite) -> None:
    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{suite.url}/experiments?status=running")
    assert page.url == f"{suite.url}/signin?next=/experiments%3Fstatus%3Drunning"
    check(page, "signin")
    page.fill("#api-key", "vdk_not-a-key")
    page.click("form[action='/signin'] button[type=submit]")
    expect(page.locator("[role=alert]")).to_contain_text("unknown or revoked")
    context.close()


def test_changes_without_the_csrf_token_are_refused(admin: Page, suite: Suite) -> None:
    draft = create_experiment(suite, "purchase_rate", start=False)
    for form in ({"reason": "forged"}, {"reason": "forged", "csrf_token": "guess"}):
        reply = admin.request.post(f"{suite.url}/experiments/{draft}/start", form=form)
        assert reply.status == 403
    reply = admin.request.post(
        f"{suite.url}/experiments/new/sample-size", form={"calc.baseline": "0.1"}
    )
    assert reply.status == 403
    assert experiment_status(suite, draft) == experiment_pb2.EXPERIMENT_STATUS_DRAFT


def test_the_key_stays_on_the_server_and_sign_out_ends_the_session(
    browser: Browser, suite: Suite
) -> None:
    context = new_context(browser)
    page = context.new_page()
    sign_in(page, suite, suite.admin_key)
    (cookie,) = [c for c in context.cookies() if c["name"] == "verdict_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert suite.admin_key not in cookie["value"]
    for path in ("/experiments", "/metrics", "/keys", "/experiments/new"):
        page.goto(f"{suite.url}{path}")
        assert suite.admin_key not in page.content()
        assert suite.admin_key not in page.url
    assert suite.admin_key not in suite.dashboard.log()

    page.click("button:has-text('Sign out')")
    page.wait_for_url(f"{suite.url}/signin")
    # The old session id no longer opens anything: the session ended on the server.
    replay = browser.new_context(viewport={"width": 1280, "height": 800})
    replay.add_cookies([{**cookie, "sameSite": "Strict"}])
    again = replay.new_page()
    again.goto(f"{suite.url}/experiments")
    assert again.url.startswith(f"{suite.url}/signin")
    replay.close()
    context.close()


def test_unknown_experiment_is_a_404_page(admin: Page, suite: Suite) -> None:
    reply = admin.goto(f"{suite.url}/experiments/no-such-experiment")
    assert reply is not None and reply.status == 404
    expect(admin.locator("h1")).to_have_text("Not found")
    check(admin, "not-found")


def test_keys_page_shows_a_new_key_once_and_revokes_it(admin: Page, suite: Suite) -> None:
    page = admin
    page.goto(f"{suite.url}/keys")
    page.fill("#f-name", "browser-reader")
    page.select_option("#f-role", "read")
    page.click("button:has-text('Create key')")
    secret = page.locator("#new-secret").input_value()
    assert secret.startswith("vdk_")
    page.goto(f"{suite.url}/keys")
    assert secret not in page.content()
    check(page, "keys")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("button[aria-label='Revoke browser-reader']")
    expect(page.locator("tr", has_text="browser-reader")).to_contain_text("revoked")


def test_unreachable_analysis_is_said_and_the_live_page_recovers(admin: Page, suite: Suite) -> None:
    key = create_experiment(suite, "purchase_rate")
    page = admin
    page.goto(f"{suite.url}/experiments/{key}")
    expect(page.locator("#live-status")).to_contain_text("Live", timeout=WAIT_MS)
    suite.analysis.stop()
    try:
        expect(page.locator("#live-status")).to_contain_text("unreachable", timeout=WAIT_MS)
        token = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
        reply = page.request.post(
            f"{suite.url}/experiments/new/sample-size",
            headers={"X-CSRF-Token": token},
            form={"calc.baseline": "0.1", "calc.minimum_detectable_effect": "0.1"},
        )
        assert reply.status == 503
        other = page.context.new_page()
        reply = other.goto(f"{suite.url}/experiments/{key}")
        assert reply is not None and reply.status == 503
        expect(other.locator("main")).to_contain_text("analysis service cannot be reached")
        assert "Traceback" not in other.content()
        other.close()
    finally:
        suite.restart_analysis()
    # The stream reconnects by itself and the next snapshot arrives without a reload.
    page.evaluate("window.__sameDocument = true")
    send_traffic(suite, key, 30, "purchase", {"control": 0.1, "treatment": 0.1})
    expect(page.locator("#live-status")).to_contain_text("Live: updated", timeout=WAIT_MS)
    expect(page.locator(".results-table").first).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True


def focused(page: Page) -> str:
    """What has the keyboard focus: its id, else its text."""
    found: str = page.evaluate(
        "() => document.activeElement.id || document.activeElement.textContent.trim()"
    )
    return found


def tab_through(page: Page, presses: int) -> list[str]:
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(focused(page))
    return seen


def test_every_control_is_reachable_by_keyboard(admin: Page, suite: Suite) -> None:
    page = admin
    draft = create_experiment(suite, "purchase_rate", start=False)
    page.goto(f"{suite.url}/experiments/{draft}")
    assert "Start experiment" in tab_through(page, 25)
    while focused(page) != "Start experiment":
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#start-dialog")).to_be_visible()
    assert focused(page) == "start-reason"
    page.keyboard.press("Escape")
    expect(page.locator("#start-dialog")).to_be_hidden()
    assert {"Results", "Over time", "Health", "Decisions & history", "Export"} <= set(
        tab_through(page, 30)
    )

    # Each step of the form: every visible control is reached with Tab.
    page.goto(f"{suite.url}/experiments/new")
    for step in ("overview", "variants", "traffic", "metrics", "plan"):
        page.click(f"[data-goto-step={step}]")
        controls = page.locator(
            # A radio group is one Tab stop (its checked radio); arrows move within it.
            f"[data-step={step}] :is(input:not([type=radio]), input[type=radio]:checked, "
            "select, textarea, button):visible"
        ).evaluate_all("els => els.map(e => e.id || e.textContent.trim())")
        page.locator("h1").click()  # start from the top of the page
        reached = set(tab_through(page, len(controls) + 15))
        missing = [c for c in controls if c not in reached]
        assert missing == [], (step, missing)
