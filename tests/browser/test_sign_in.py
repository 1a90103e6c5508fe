"""Sign-in with an API key: kept in the tab's sessionStorage only, a wrong key refused in
words, every page scoped to the key's tenant, and the console served under its CSP."""

from __future__ import annotations

import httpx

from tests.browser.conftest import ConsoleLog
from tests.browser.drive import expect, go, open_console, shot, sign_in, tid, wait_job
from tests.browser.stack import ConsoleStack
from tests.integration.helpers import scene_png, submit


def test_console_is_served_under_its_content_security_policy(stack: ConsoleStack) -> None:
    answer = httpx.get(stack.console_url, timeout=10)
    assert answer.status_code == 200, answer.text
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy, policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    redirect = httpx.get(f"{stack.api_url}/console", timeout=10)
    assert redirect.status_code == 307 and redirect.headers["location"].endswith("/console/")


def test_key_typed_then_enter_signs_in_for_this_tab_only(
    page, new_page, stack: ConsoleStack
) -> None:
    open_console(page, stack)
    expect(tid(page, "signin-form")).to_be_visible()
    expect(page.get_by_role("form", name="Sign in")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(tid(page, "nav")).to_be_hidden()
    # A text field masked by CSS: Chrome's password manager never offers to save the key.
    field = tid(page, "signin-key")
    expect(field).to_have_attribute("type", "text")
    expect(field).to_have_attribute("autocomplete", "off")
    assert field.evaluate("el => getComputedStyle(el).webkitTextSecurity") == "disc"
    expect(page.locator("input[type=password]")).to_have_count(0)
    shot(page, "signin")
    sign_in(page, stack)
    expect(tid(page, "toast")).to_be_empty(timeout=8_000)  # "Signed in." does not stay
    expect(page.get_by_role("navigation", name="Console")).to_be_visible()
    expect(page).to_have_url(f"{stack.console_url}#/jobs")
    key = stack.keys["console"]
    stored = page.evaluate(
        """() => ({session: Object.values(sessionStorage), local: Object.keys(localStorage),
                   cookie: document.cookie})"""
    )
    assert key in stored["session"], stored
    assert not stored["local"] and not stored["cookie"], stored
    assert key not in page.url
    assert not page.context.cookies()

    other_tab = new_page()  # a new context: another browser profile, signed out
    open_console(other_tab, stack)
    expect(tid(other_tab, "signin-form")).to_be_visible()

    tid(page, "signout").click()
    expect(tid(page, "signin-form")).to_be_visible()
    assert page.evaluate("() => Object.values(sessionStorage)") == []


def test_wrong_key_is_refused_in_words(page, console_log: ConsoleLog, stack: ConsoleStack) -> None:
    console_log.expect(r"status of 401")  # the browser logs the refused check itself
    open_console(page, stack)
    tid(page, "signin-key").fill("vq_not-a-key")
    tid(page, "signin-submit").click()
    error = tid(page, "signin-error")
    expect(error).to_be_visible()
    expect(error).not_to_be_empty()
    expect(tid(page, "signin-form")).to_be_visible()
    assert page.evaluate("() => Object.values(sessionStorage)") == []
    page.keyboard.press("Escape")  # closes the error
    expect(error).to_be_hidden()


def test_each_tenant_sees_only_its_own_jobs(page, stack: ConsoleStack) -> None:
    png, _ = scene_png(seed=5)
    with stack.client("console") as console, stack.client("other") as other:
        mine = submit(console, png, task="caption").raise_for_status().json()["id"]
        theirs = submit(other, png, task="caption").raise_for_status().json()["id"]
        wait_job(console, mine)
        wait_job(other, theirs)
    sign_in(page, stack, tenant="other")
    rows = tid(page, "job-row")
    expect(rows.first).to_be_visible()
    shown = rows.evaluate_all("rows => rows.map(r => r.dataset.jobId)")
    assert theirs in shown and mine not in shown, shown


def test_status_message_goes_with_a_route_change(page, stack: ConsoleStack) -> None:
    sign_in(page, stack)
    expect(tid(page, "toast")).not_to_be_empty()  # "Signed in."
    go(page, "#/batches")
    expect(tid(page, "toast")).to_be_empty(timeout=1_500)
