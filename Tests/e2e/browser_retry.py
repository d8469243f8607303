"""Retrying dead jobs from the dashboard, in a real browser (headless Chromium), against `sluice up`.

Usage: browser_retry.py BASE_URL ADMIN_KEY

The sluice under test serves lane `broken/gpt-4o-mini`: a mock provider that answers every call
with a 500, so a job with max_attempts 1 ends dead. Checks, as a person would see them:
- a dead job's page offers Retry; the button (a POST with the session's CSRF token) opens the new
  job, whose timeline begins "retry of <old id>", and the old job's page then links to it and
  offers no second retry;
- the jobs page's "Retry these…" on the dead jobs of the lane asks for confirmation with the
  count, and confirming retries exactly those jobs (the API sees each linked to its retry);
- another tenant's key is offered no retry of these jobs (its job page is not found).
"""
import json
import sys
import time
import urllib.parse

from browser_support import Browser
from e2e_support import check, new_key, request

base, admin = sys.argv[1], sys.argv[2]
LANE = "broken/gpt-4o-mini"


def dead_job(key):
    """A job of the broken lane with one attempt, waited for until it is dead."""
    status, body = request(base, key, "POST", "/v1/jobs", {
        "lane": LANE, "max_attempts": 1,
        "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}})
    check(status == 202, f"a job into {LANE} is accepted ({status})")
    return wait_dead(key, json.loads(body)["id"])


def wait_dead(key, job):
    state = None
    for _ in range(6):
        status, body = request(base, key, "GET", f"/v1/jobs/{job}?wait=10")
        state = json.loads(body).get("status")
        if state == "dead":
            return job
    check(False, f"job {job} of the failing mock ends dead ({state})")


acme, globex = new_key(base, admin, "acme"), new_key(base, admin, "globex")
first = dead_job(acme)

with Browser() as browser:
    browser.log_in(base, acme)
    browser.goto(f"{base}/ui/jobs/{first}")
    check(browser.text("#job-state") == "dead", f"the job's page shows it dead ({browser.text('#job-state')})")
    check(browser.evaluate("document.getElementById('retry') !== null"), "a dead job's page offers Retry")
    browser.submit("#retry")
    path = browser.evaluate("location.pathname")
    retried = path.rsplit("/", 1)[-1]
    check(path.startswith("/ui/jobs/job_") and retried != first, f"the Retry button opens the new job ({path})")
    timeline = browser.evaluate("Array.from(document.querySelectorAll('#timeline li')).map(li => li.textContent).join('\\n')")
    check(f"retry of {first}" in timeline, "whose timeline begins 'retry of' the old job")
    status, body = request(base, acme, "GET", f"/v1/jobs/{first}")
    check(json.loads(body).get("retried_as") == retried, "the API links the old job to its retry")
    browser.goto(f"{base}/ui/jobs/{first}")
    check(browser.evaluate(f"(document.querySelector('#retried-as a') || {{}}).getAttribute?.('href')") == f"/ui/jobs/{retried}",
          "the old job's page links to its retry")
    check(browser.evaluate("document.getElementById('retry') === null"), "and offers no second retry")

    # "Retry these…": the lane's dead jobs not retried yet (the first retry, dead again, and two more).
    wait_dead(acme, retried)
    others = [dead_job(acme), dead_job(acme)]
    expected = {retried, *others}
    query = urllib.parse.urlencode({"state": "dead", "lane": LANE})
    browser.goto(f"{base}/ui/jobs?{query}")
    link = browser.evaluate("(document.getElementById('retry-these') || {}).href")
    check(bool(link), "the dead jobs' list offers 'Retry these…'")
    browser.goto(link)
    count = browser.text("#retry-count") or ""
    check(count.startswith(f"{len(expected)} dead job(s)"), f"a confirmation with the count comes first ({count!r})")
    status, body = request(base, acme, "GET", f"/v1/jobs/{others[0]}")
    check("retried_as" not in json.loads(body) or json.loads(body)["retried_as"] is None, "nothing is retried before the confirmation")
    browser.submit("#retry-confirm")
    check((browser.text("#retried-count") or "").startswith(f"Retried {len(expected)} job(s)"),
          f"confirming retries them ({browser.text('#retried-count')!r})")
    rows = browser.evaluate("Array.from(document.querySelectorAll('#retried tbody tr')).map(r => r.querySelector('td a').textContent)")
    check(set(rows) == expected, "exactly the lane's dead jobs not retried yet")
    for job in expected:
        status, body = request(base, acme, "GET", f"/v1/jobs/{job}")
        check(json.loads(body).get("retried_as"), f"the API sees {job} linked to its retry")

with Browser() as browser:
    browser.log_in(base, globex)
    browser.goto(f"{base}/ui/jobs/{others[0]}")
    check("Not found" in (browser.text("#error-message") or ""), "another tenant's key does not see the job, nor its Retry")

print("browser: all checks passed")
