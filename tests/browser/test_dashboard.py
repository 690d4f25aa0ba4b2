"""The dashboard as a person uses it, in headless Chromium: live progress, filters, pages,
actions with confirmation, topic details, payloads shown as text, read-only and token modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from harness import wait_until

XSS = "<img src=x onerror=alert(1)><script>window.pwned=1</script>"


def until(driver, condition, what, timeout=20):
    """Polls ``condition()`` (bounded) until it is truthy; returns its value."""
    wait = WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(NoSuchElementException,
                                             StaleElementReferenceException))
    return wait.until(lambda _: condition(), message=what)


def css(driver, selector):
    return driver.find_element(By.CSS_SELECTOR, selector)


def texts(driver, selector):
    """The text of every match, read at once in the page (no stale elements midway)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)", selector)


def go(driver, server, route=""):
    driver.get(f"{server.url}/{route}")
    until(driver, lambda: driver.execute_script("return document.readyState") == "complete",
          "page loaded")


def click(driver, selector):
    """Finds and clicks ``selector`` again until the click lands: live updates re-render rows and
    toolbars, so an element found a moment ago can be stale by the click."""
    until(driver, lambda: css(driver, selector).click() or True, f"a click on {selector}")


def confirm(driver):
    until(driver, lambda: css(driver, "dialog[open]"), "a confirmation dialog")
    click(driver, "#dialog-ok")


def screenshot(driver, name):
    target = os.environ.get("TOPICFLOW_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(target) / name))


def test_a_job_appears_and_its_bar_moves_without_a_reload(browser, server, job_name):
    go(browser, server)
    browser.execute_script("window.notReloaded = true")
    server.client().submit(job_name, [(f"t{i:03}", "sleep:150 x") for i in range(64)])
    row = f'tr.job[data-job="{job_name}"]'
    until(browser, lambda: css(browser, row), "the new job's row")
    seen = set()

    def finished():
        done = int(css(browser, f"{row} .bar").get_attribute("data-done"))
        seen.add(done)
        return done == 64

    until(browser, finished, "the bar reaching 64 of 64", timeout=60)
    assert len(seen - {0, 64}) >= 1, f"the bar jumped straight to the end: {sorted(seen)}"
    assert css(browser, f"{row} td:nth-child(3)").text == "64 / 64"
    assert browser.execute_script("return window.notReloaded") is True
    assert css(browser, "#connection").text == "live"


def test_the_status_filter_shows_the_failed_topics(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, [f"ok{i}" for i in range(10)] + [(f"bad{i}", "fail boom") for i in range(3)])
    tf.wait(job_name, timeout=30)
    go(browser, server, f"#/jobs/{job_name}")
    until(browser, lambda: len(texts(browser, "table.topics tbody tr")) == 13, "13 topics")
    click(browser, '.legend a[data-filter="failed"]')
    until(browser, lambda: texts(browser, "tbody td.key") == ["bad0", "bad1", "bad2"],
          "only the failed topics")
    assert "status=failed" in browser.current_url
    assert set(texts(browser, "tbody .badge")) == {"failed"}
    assert all("failed on purpose: fail boom" in t for t in texts(browser, "tbody td.error"))
    browser.refresh()  # a bookmarked filter shows the same
    until(browser, lambda: texts(browser, "tbody td.key") == ["bad0", "bad1", "bad2"],
          "the failed topics after a reload")


def test_retry_failed_runs_them_again_and_the_page_shows_it(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, [(f"f{i}", "flaky") for i in range(4)])
    assert tf.wait(job_name, timeout=30)["failed"] == 4
    go(browser, server, f"#/jobs/{job_name}?status=failed")
    until(browser, lambda: len(texts(browser, "tbody td.key")) == 4, "4 failed topics")
    click(browser, '.toolbar [data-action="retry-failed"]')
    confirm(browser)
    until(browser, lambda: "4 failed topics" in css(browser, "#flash").text, "the action's answer")
    until(browser, lambda: "No failed topics" in css(browser, "p.empty").text,
          "the failed list emptied")
    until(browser, lambda: css(browser, '.legend a[data-filter="completed"]').text
          == "completed 4", "4 completed in the legend")
    assert tf.job(job_name)["completed"] == 4


def test_cancel_from_the_overview(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, [(f"h{i}", "hang") for i in range(3)])
    wait_until(lambda: tf.job(job_name)["running"] >= 1, what="a hanging topic running")
    go(browser, server)
    row = f'tr.job[data-job="{job_name}"]'
    until(browser, lambda: css(browser, f'{row} [data-action="cancel"]').is_displayed(),
          "a cancel button")
    click(browser, f'{row} [data-action="cancel"]')
    confirm(browser)
    until(browser, lambda: "Cancelled 3 topics" in css(browser, "#flash").text, "the answer")
    until(browser, lambda: "cancelled" in texts(browser, f"{row} .badge"), "a cancelled badge")
    until(browser, lambda: css(browser, f'{row} [data-action="delete"]').is_displayed(),
          "delete offered once nothing runs")
    assert {t["status"] for t in tf.topics(job_name)} == {"cancelled"}


def test_a_topics_error_is_readable(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, [("broken one", "fail: connection refused by db-3")])
    tf.wait(job_name, timeout=30)
    go(browser, server, f"#/jobs/{job_name}")
    click(browser, "tbody td.key a")  # (waits for the topic's link)
    error = until(browser, lambda: css(browser, 'pre[data-field="error"]'), "the error block")
    assert error.text == "failed on purpose: fail: connection refused by db-3"
    assert css(browser, "h2.key").text == "broken one"
    assert css(browser, "[data-status]").text == "failed"


def test_an_html_payload_is_shown_as_text_and_never_runs(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, [("<b>key</b>", XSS)])
    tf.wait(job_name, timeout=30)
    go(browser, server, f"#/jobs/{job_name}")
    until(browser, lambda: texts(browser, "tbody td.key") == ["<b>key</b>"], "the key as text")
    click(browser, "tbody td.key a")
    payload = until(browser, lambda: css(browser, 'pre[data-field="payload"]'), "the payload")
    assert payload.text == XSS
    assert css(browser, 'pre[data-field="result"]').text == XSS.upper()
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script, main b") == []
    assert browser.title.startswith("<b>key</b>")


def test_long_and_binary_payloads(browser, server, job_name):
    tf = server.client()
    long_text = "word " * 1000
    tf.submit(job_name, [("long", long_text), ("bin", b"\xff\xfe\x00")])
    tf.wait(job_name, timeout=30)
    go(browser, server, f"#/jobs/{job_name}/topics/long")
    pre = until(browser, lambda: css(browser, 'pre[data-field="payload"]'), "the payload")
    assert len(pre.get_attribute("textContent")) == 2001
    click(browser, "main section button")  # Show all (5,000 characters)
    assert pre.get_attribute("textContent") == long_text
    go(browser, server, f"#/jobs/{job_name}/topics/bin")
    pre = until(browser, lambda: css(browser, 'pre[data-field="payload"]'), "the payload")
    assert pre.text == "//4A"
    assert "base64" in css(browser, "p.note").text


def test_pages_next_previous_and_jump_to_a_key(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, [f"k{i:04}" for i in range(250)])
    go(browser, server, f"#/jobs/{job_name}")
    keys = lambda: texts(browser, "tbody td.key")  # noqa: E731
    until(browser, lambda: len(keys()) == 100 and keys()[0] == "k0000", "the first page")
    click(browser, "button[data-next]")
    until(browser, lambda: keys()[:1] == ["k0100"], "the second page")
    assert "after=k0099" in browser.current_url
    click(browser, "button[data-next]")
    until(browser, lambda: keys()[:1] == ["k0200"] and len(keys()) == 50, "the last page")
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-next]") == []
    browser.find_element(By.XPATH, "//button[contains(., 'Previous')]").click()
    until(browser, lambda: keys()[:1] == ["k0100"], "back to the second page")
    field = css(browser, 'input[name="from"]')
    field.send_keys("k0170\n")
    until(browser, lambda: keys()[:1] == ["k0170"], "the page from k0170")
    assert "from=k0170" in browser.current_url


def test_polling_when_event_source_is_unavailable(browser, server, job_name):
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                     {"source": "delete window.EventSource"})
    try:
        go(browser, server)
        browser.refresh()
        until(browser, lambda: css(browser, "#connection").text == "polling every 2 s", "polling")
        server.client().submit(job_name, [f"p{i}" for i in range(5)])
        row = f'tr.job[data-job="{job_name}"] .bar'
        until(browser, lambda: css(browser, row).get_attribute("data-done") == "5",
              "the job done, by polling")
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)
        browser.get("about:blank")


@pytest.mark.parametrize("server_info", [True, False], ids=["server-info", "probe"])
def test_read_only_hides_every_action(browser, make_server, job_name, server_info):
    s = make_server(read_only=True, preload={job_name: [{"key": "a", "payload": "fail"}]},
                    fake_args=() if server_info else ("--no-server-info",))
    go(browser, s)
    row = f'tr.job[data-job="{job_name}"]'
    until(browser, lambda: css(browser, row), "the job")
    until(browser, lambda: css(browser, "#mode").is_displayed(), "the read-only badge")
    assert [b for b in browser.find_elements(By.CSS_SELECTOR, "[data-action]")
            if b.is_displayed()] == []


def test_the_token_is_asked_once(browser, make_server, job_name):
    s = make_server(token="s3cret")
    tf = s.client()
    tf.submit(job_name, [(f"h{i}", "hang") for i in range(2)])
    go(browser, s)
    row = f'tr.job[data-job="{job_name}"]'
    button = lambda name: css(browser, f'{row} [data-action="{name}"]')  # noqa: E731
    until(browser, lambda: button("pause").is_displayed(), "a pause button")
    button("pause").click()
    confirm(browser)
    until(browser, lambda: css(browser, "#dialog-input").is_displayed(), "the token question")
    css(browser, "#dialog-input").send_keys("s3cret")
    click(browser, "#dialog-ok")
    until(browser, lambda: "Paused" in css(browser, "#flash").text, "paused with the token")
    until(browser, lambda: button("resume").is_displayed(), "a resume button")
    button("resume").click()
    confirm(browser)  # no token question this time
    until(browser, lambda: "Resumed" in css(browser, "#flash").text, "resumed")
    assert tf.job(job_name)["paused"] is False
    tf.cancel(job_name)


def test_no_workers_is_a_clear_warning(browser, make_server, job_name):
    s = make_server(workers=0)
    s.client().submit(job_name, ["waiting"])
    go(browser, s)
    banner = until(browser, lambda: css(browser, "#banners .banner"), "a warning")
    assert "No workers connected" in banner.text


def test_a_job_page_is_fast_on_a_big_job(browser, server, job_name):
    tf = server.client()
    tf.submit(job_name, (f"big{i:06}" for i in range(20000)), chunk_size=10000)
    tf.wait(job_name, timeout=120)
    browser.get("about:blank")
    browser.get(f"{server.url}/#/jobs/{job_name}?status=completed")
    until(browser, lambda: len(texts(browser, "tbody td.key")) == 100, "the first page")
    paint, rendered = browser.execute_script(
        "return [performance.getEntriesByName('first-contentful-paint')[0]?.startTime,"
        " performance.getEntriesByName('topics-rendered')[0].startTime]")
    assert paint is not None and paint < 1000, f"first paint after {paint} ms"
    assert rendered < 1000, f"the first page of a 20,000-topic job after {rendered:.0f} ms"
    start = browser.execute_script("return performance.now()")  # the next page, by a click
    click(browser, "button[data-next]")
    until(browser, lambda: texts(browser, "tbody td.key")[:1] == ["big000100"], "page 2")
    elapsed = browser.execute_script(
        "return performance.getEntriesByName('topics-rendered').at(-1).startTime") - start
    assert elapsed < 1000, f"the next page after {elapsed:.0f} ms"


def test_a_busy_dashboard(browser, server):
    """Several jobs at once, as in the README's screenshots ($TOPICFLOW_SCREENSHOTS=docs/img)."""
    titles = (Path(__file__).resolve().parents[2] / "examples" / "topics.txt").read_text()
    titles = sorted(t for t in titles.splitlines() if t.strip())
    tf = server.client()
    tf.submit("reports", [(t, "fail: HTTP 503 from the renderer" if i % 9 == 0
                                       else "sleep:20 ok") for i, t in enumerate(titles[:90])])
    tf.wait("reports", timeout=60)
    tf.submit("backfill", [(f"2024-{i:03}", "hang") for i in range(40)])
    tf.pause("backfill")
    tf.cancel("backfill")
    tf.submit("backfill", [(f"2025-{i:03}", "sleep:50 x") for i in range(60)])
    tf.pause("backfill")
    go(browser, server)
    tf.submit("nightly", [(t, ("fail: timeout after 30 s" if i % 40 == 7 else "sleep:400 ok"))
                         for i, t in enumerate(titles)])
    row = 'tr.job[data-job="nightly"]'
    until(browser, lambda: int(css(browser, f"{row} .bar").get_attribute("data-done")) >= 100,
          "a third of the job done", timeout=60)
    assert "/s" in css(browser, f"{row} td:nth-child(5)").text  # a rate once it has moved
    assert "paused" in texts(browser, 'tr.job[data-job="backfill"] .badge')
    screenshot(browser, "dashboard-overview.png")
    go(browser, server, "#/jobs/nightly")
    until(browser, lambda: len(texts(browser, "tbody td.key")) == 100, "the job's first page")
    screenshot(browser, "dashboard-job.png")
    tf.cancel("nightly")
    tf.cancel("backfill")
