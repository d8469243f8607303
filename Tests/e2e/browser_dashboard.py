"""The dashboard in a real browser (headless Chromium over its DevTools protocol), against `sluice up`.

Usage: browser_dashboard.py BASE_URL ADMIN_KEY

The sluice under test serves lane `mock/gpt-4o-mini` (a mock provider, held to 600 requests a
minute, so that a bulk of 100 takes about ten seconds to drain) and `held` (an external provider
with no worker: its jobs stay queued). Checks, as a person would see them:
- logging in through the form (a key in a password field), and being refused with a wrong key;
- the overview's row for the lane appearing after a bulk, its depth rising and then falling to 0
  as the mock drains it, without the page being reloaded;
- the scaling and providers pages refreshing in place (the server's HTML, every 2 s);
- a job's page with its timeline, ending in succeeded;
- the usage page and its CSV, once the archiver has booked the jobs;
- an OpenAI batch (from the official SDK) on the batches page, completed, with its counts;
- cancelling a queued job with the job page's button, and an open job page following a cancel made
  elsewhere (its timeline over Server-Sent Events);
- a tenant's key seeing its own jobs and not another tenant's (list and job page).
"""
import json
import sys
import time

from browser_support import Browser
from e2e_support import check, new_key, request

base, admin = sys.argv[1], sys.argv[2]
LANE = "mock/gpt-4o-mini"


def submit(key, lane, count=1):
    jobs = [{"lane": lane, "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {n}"}]}}
            for n in range(count)]
    status, body = request(base, key, "POST", "/v1/jobs/bulk", jobs)
    check(status == 202, f"a bulk of {count} into {lane} is accepted ({status})")
    return [entry["id"] for entry in json.loads(body)["data"]]


def ready_of(browser, lane):
    """The overview's ready and leased figures for `lane`, as the page shows them now (None: no row)."""
    return browser.evaluate(
        "(() => { const row = Array.from(document.querySelectorAll('#lanes tbody tr'))"
        f".find(r => r.dataset.lane === {json.dumps(lane)}); if (!row) return null;"
        " const n = f => Number(row.querySelector('[data-field=\"' + f + '\"]').textContent);"
        " return [n('ready'), n('leased')]; })()")


acme, globex = new_key(base, admin, "acme"), new_key(base, admin, "globex")

with Browser() as browser:
    browser.goto(base + "/ui/overview")
    check(browser.evaluate("location.pathname") == "/ui/login", "a page without a login goes to the login form")
    browser.log_in(base, "sluice_wrongkey_" + "x" * 43)
    check("not valid" in (browser.text("#login-error") or ""), "a wrong key is refused on the form")

    browser.log_in(base, admin)
    check(browser.evaluate("location.pathname") == "/ui/overview", "an admin key logs in to the overview")
    cookie_visible = browser.evaluate("document.cookie.includes('sluice_session')")
    check(not cookie_visible, "the session cookie is HttpOnly: the page's script cannot read it")

    # The bulk goes in after the page loaded: the row appears and moves by the page's own polling.
    marker = browser.evaluate("performance.timeOrigin")
    ids = submit(acme, LANE, 100)
    check(browser.wait_for(f"(() => {{ const r = {json.dumps(LANE)}; return Array.from(document.querySelectorAll('#lanes tbody tr')).some(x => x.dataset.lane === r); }})()", 20),
          "the lane's row appears on the overview without a reload")
    seen = []
    deadline_rise = browser.wait_for(
        f"(() => {{ const row = Array.from(document.querySelectorAll('#lanes tbody tr')).find(r => r.dataset.lane === {json.dumps(LANE)});"
        " return row && Number(row.querySelector('[data-field=\"ready\"]').textContent) + Number(row.querySelector('[data-field=\"leased\"]').textContent) > 0; })()", 20)
    seen.append(ready_of(browser, LANE))
    check(deadline_rise, f"the lane's depth rises after the bulk ({seen[-1]})")
    drained = browser.wait_for(
        f"(() => {{ const row = Array.from(document.querySelectorAll('#lanes tbody tr')).find(r => r.dataset.lane === {json.dumps(LANE)});"
        " return row && row.querySelector('[data-field=\"ready\"]').textContent === '0' && row.querySelector('[data-field=\"leased\"]').textContent === '0'; })()", 90)
    check(drained, f"the depth falls to 0 as the mock drains the lane ({ready_of(browser, LANE)})")
    check(browser.evaluate("performance.timeOrigin") == marker, "all of it without reloading the page")
    points = browser.evaluate(f"document.querySelector('tr[data-lane=\"{LANE}\"] polyline[data-field=\"depth\"]').getAttribute('points')")
    # Each point is a 10 s slot's most ready jobs: the bulk's rise stays on the chart (y < 23).
    check(any(float(point.split(",")[1]) < 23 for point in (points or "").split()), f"the depth sparkline shows the rise ({points!r})")

    # The scaling and providers pages put the server's fresh HTML in place every refresh (2 s).
    for page, holder, item in [("scaling", "pools", 'section.pool[data-pool="default"]'),
                               ("providers", "providers", 'section.provider[data-provider="mock"]')]:
        browser.goto(f"{base}/ui/{page}")
        marker = browser.evaluate("performance.timeOrigin")
        present = f"document.querySelector('#{holder} {item}') !== null"
        check(browser.evaluate(present), f"the {page} page shows {item}")
        check(browser.wait_for(f"document.getElementById('{holder}').dataset.updated !== undefined && {present}", 15),
              f"the {page} page fetches its figures again and puts them in place")
        check(browser.evaluate("performance.timeOrigin") == marker, f"the {page} page is not reloaded")

    # A job's page: its timeline, ending in succeeded.
    browser.goto(f"{base}/ui/jobs/{ids[0]}")
    check(browser.text("#job-state") == "succeeded", f"the job page shows the job succeeded ({browser.text('#job-state')})")
    timeline = browser.evaluate("Array.from(document.querySelectorAll('#timeline li .state')).map(e => e.textContent)")
    check(timeline[:1] == ["queued"] and "leased" in timeline and timeline[-1] == "succeeded",
          f"the timeline runs queued → leased → succeeded ({timeline})")
    check("hello 0" in (browser.text("#job-request") or ""), "the job page shows the request")
    check((browser.text("#job-result") or "") != "", "the job page shows the result")

    # Usage: the archiver books the finished jobs into the ledger; the page and its CSV show them.
    booked = 0
    for _ in range(40):
        browser.goto(base + "/ui/usage?group_by=tenant")
        booked = browser.evaluate("(() => { const r = document.querySelector('#usage tr[data-group=\"acme\"]');"
                                  " return r ? Number(r.children[1].textContent) : 0; })()")
        if booked >= 100:
            break
        time.sleep(1)
    check(booked >= 100, f"the usage page shows acme's 100 finished jobs ({booked})")
    check(browser.evaluate("document.querySelectorAll('#usage-chart rect').length") >= 1, "the usage chart has a bar")
    csv = browser.evaluate("fetch(document.getElementById('csv').href).then(r => r.text())")
    check(csv.startswith("tenant,requests,") and "\nacme," in csv, f"the CSV download has the same rows ({csv[:120]!r})")

    # Batches: an OpenAI batch of 20 from the official SDK, its progress bar full once it completes.
    import io
    import openai
    oa = openai.OpenAI(base_url=base + "/v1", api_key=acme, max_retries=0, timeout=60)
    lines = "".join(json.dumps({"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"batch {n}"}]}}) + "\n"
                    for n in range(20))
    uploaded = oa.files.create(file=("batch.jsonl", io.BytesIO(lines.encode())), purpose="batch")
    batch = oa.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    status = None
    for _ in range(60):
        browser.goto(base + "/ui/batches?tenant=acme")
        status = browser.text(f'tr[data-batch="{batch.id}"] [data-field="status"]')
        if status == "completed":
            break
        time.sleep(1)
    check(status == "completed", f"the batches page shows the SDK's batch completed ({status})")
    check(browser.text(f'tr[data-batch="{batch.id}"] [data-field="succeeded"]') == "20"
          and browser.text(f'tr[data-batch="{batch.id}"] [data-field="percent"]') == "100%", "with its 20 requests, 100 %")

    # Cancel with the job page's button (a POST carrying the session's CSRF token).
    held = submit(acme, "held")[0]
    browser.goto(f"{base}/ui/jobs/{held}")
    check(browser.text("#job-state") == "queued", "a job of a lane with no worker is queued")
    browser.submit("#cancel")
    check(browser.text("#job-state") == "cancelled", f"the cancel button cancels it ({browser.text('#job-state')})")
    status, body = request(base, acme, "GET", f"/v1/jobs/{held}")
    check(json.loads(body)["status"] == "cancelled", "the API sees it cancelled too")

    # A job's page follows its timeline live (Server-Sent Events): cancelled over the API, the open
    # page shows it without a reload.
    other = submit(acme, "held")[0]
    browser.goto(f"{base}/ui/jobs/{other}")
    marker = browser.evaluate("performance.timeOrigin")
    time.sleep(0.5)  # the page's EventSource connects
    request(base, acme, "POST", f"/v1/jobs/{other}/cancel")
    check(browser.wait_for("document.getElementById('job-state').textContent === 'cancelled'", 20)
          and browser.evaluate("performance.timeOrigin") == marker, "an open job page shows the cancel without a reload")
    check(browser.evaluate("document.getElementById('cancel') === null"), "and takes its cancel button away")

with Browser() as browser:
    # A tenant's key: its own jobs, not another tenant's.
    theirs = submit(globex, "held")[0]
    mine = submit(acme, "held")[0]
    browser.log_in(base, acme)
    check(browser.evaluate("location.pathname") == "/ui/jobs", "a tenant's key logs in to its jobs")
    listed = browser.evaluate("Array.from(document.querySelectorAll('#jobs tbody tr')).map(r => r.dataset.job)")
    check(mine in listed, "the tenant's list has its job")
    check(theirs not in listed, "the tenant's list does not have another tenant's job")
    browser.goto(f"{base}/ui/jobs/{theirs}")
    check("Not found" in (browser.text("#error-message") or ""), "another tenant's job page is not found")
    browser.goto(f"{base}/ui/overview")
    check("admin key" in (browser.text("#error-message") or ""), "the overview (every tenant's volume) needs an admin key")

print("browser: all checks passed")
