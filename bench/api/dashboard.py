#!/usr/bin/env python3
"""bench/api/dashboard.py: the dashboard on a large database, timed in a real browser.

    dashboard.py URL JOB REPEAT      (bench/api/run.sh calls it with the sink it started)

Debian's chromium + chromium-driver through python3-selenium, headless, a fresh page each time:
  overview first paint      first-contentful-paint of URL/
  overview with the job     navigation start to the row of JOB showing its counts
  job page first paint      first-contentful-paint of URL/#/jobs/JOB?status=failed
  job page rendered         navigation start to the first 100 failed topics in the table
  next page                 the "Next" click to the next 100 rendered
Prints CSV lines "what,ms" (REPEAT of each); exits 2 when selenium or chromium is missing.
"""

import shutil
import sys
import tempfile

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    sys.exit(2)

url, job, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
chromium = shutil.which("chromium")
chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not chromium:
    sys.exit(2)

profile = tempfile.mkdtemp(prefix="topicflow-bench-chromium-")
options = webdriver.ChromeOptions()
options.binary_location = chromium
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-sync", "--disable-dev-shm-usage",
            "--window-size=1280,800", f"--user-data-dir={profile}"):
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service(chromedriver), options=options)


def until(condition, what, timeout=30):
    WebDriverWait(driver, timeout, poll_frequency=0.01,
                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
                  ).until(lambda _: condition(), message=what)


def keys():
    return driver.execute_script(
        "return [...document.querySelectorAll('tbody td.key')].map(e => e.textContent)")


def paint():
    return driver.execute_script(
        "return performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null")


def emit(what, ms):
    print(f"{what},{ms:.1f}", flush=True)


try:
    row = f'tr.job[data-job="{job}"] td.num'
    for _ in range(repeat):
        driver.get("about:blank")
        driver.get(url + "/")
        until(lambda: driver.find_element(By.CSS_SELECTOR, row).text.strip(), "the job's row")
        emit("dashboard overview with the job", driver.execute_script("return performance.now()"))
        until(lambda: paint() is not None, "a first paint")
        emit("dashboard overview first paint", paint())

        driver.get("about:blank")
        driver.get(f"{url}/#/jobs/{job}?status=failed")
        until(lambda: len(keys()) == 100, "the job's first page")
        emit("dashboard job page rendered", driver.execute_script(
            "return performance.getEntriesByName('topics-rendered').at(-1).startTime"))
        until(lambda: paint() is not None, "a first paint")
        emit("dashboard job page first paint", paint())

        first = keys()[0]
        start = driver.execute_script("return performance.now()")
        driver.find_element(By.CSS_SELECTOR, "button[data-next]").click()
        until(lambda: keys() and keys()[0] != first, "the next page")
        emit("dashboard next page", driver.execute_script(
            "return performance.getEntriesByName('topics-rendered').at(-1).startTime") - start)
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
