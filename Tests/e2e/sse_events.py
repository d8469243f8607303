"""Live job events (SSE) end to end, read with a real SSE client (`httpx` + `httpx-sse`): a job's
stream in order and ending with its outcome, the tenant's stream resumed after a dropped
connection with Last-Event-ID (no gap, no repeat, checked against a stream left open), and
tenant isolation.

Usage: sse_events.py BASE_URL ADMIN_KEY   (run by Tests/sluiceTests/EventStreamE2ETests.swift
against `sluice up` with provider `mock`, model gpt-4o-mini, served by the mock). Exits non-zero,
naming the check, at the first failure.
"""
import json
import sys
import threading
import time

import httpx
from httpx_sse import connect_sse

from e2e_support import check, request

base, admin = sys.argv[1], sys.argv[2]
JOB = {"lane": "mock/gpt-4o-mini", "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}


def key(tenant):
    status, body = request(base, admin, "POST", "/v1/keys", {"tenant": tenant, "scopes": ["submit", "read"]})
    check(status == 201 or status == 200, f"a key for {tenant}")
    return json.loads(body)["key"]


def submit(api_key):
    status, body = request(base, api_key, "POST", "/v1/jobs", JOB)
    check(status == 202, "a job is accepted")
    return json.loads(body)["id"]


def wait_done(api_key, job):
    status, body = request(base, api_key, "GET", f"/v1/jobs/{job}?wait=20")
    check(status == 200 and json.loads(body)["status"] == "succeeded", f"{job} succeeds")


class Reader(threading.Thread):
    """Reads an event stream in a thread until `enough(events)` holds (or 60 s pass); keeps
    every event (id, event, data) in order."""

    def __init__(self, api_key, path, enough, headers=None):
        super().__init__(daemon=True)
        self.api_key, self.path, self.enough, self.headers = api_key, path, enough, headers or {}
        self.events = []
        self.opened = threading.Event()

    def run(self):
        headers = {"Authorization": f"Bearer {self.api_key}", **self.headers}
        deadline = time.time() + 60
        with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
            with connect_sse(client, "GET", base + self.path, headers=headers) as source:
                source.response.raise_for_status()
                self.opened.set()
                for sse in source.iter_sse():
                    if not sse.data:
                        continue  # the opening `retry:` block
                    self.events.append((sse.id, sse.event, json.loads(sse.data)))
                    if self.enough(self.events) or time.time() > deadline:
                        return


def transitions(events):
    """The (job, to) pairs of `event: job` events, in order."""
    return [(job, data["to"]) for _, name, data in events if name == "job" for job in data["jobs"]]


def succeeded(events):
    return {job for job, to in transitions(events) if to == "succeeded"}


acme, other = key("acme"), key("other")

# 1. One job's stream: the timeline so far, each transition, then `end` with the outcome.
job = submit(acme)
with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
    with connect_sse(client, "GET", f"{base}/v1/jobs/{job}/events", headers={"Authorization": f"Bearer {acme}"}) as source:
        check(source.response.headers["content-type"].startswith("text/event-stream"), "a job's events are an event stream")
        seen = [(sse.id, sse.event, json.loads(sse.data)) for sse in source.iter_sse() if sse.data]
check([data["status"] for _, name, data in seen if name == "status"] == ["queued", "leased", "succeeded"],
      "a job's stream: queued, leased, succeeded, in order")
check([identifier for identifier, name, _ in seen if name == "status"] == ["1", "2", "3"], "its events are numbered")
check(seen[-1][1] == "end" and seen[-1][2] == {"job": job, "status": "succeeded"}, "it ends with the outcome")

# 2. The tenant's stream, dropped and resumed with Last-Event-ID, against one left open.
other_stream = Reader(other, "/v1/events", lambda events: False)
other_stream.start()
jobs = []
control = Reader(acme, "/v1/events", lambda events: len(jobs) == 6 and succeeded(events) >= set(jobs))
control.start()
first = Reader(acme, "/v1/events", lambda events: len(succeeded(events)) >= 3)
first.start()
for reader in (other_stream, control, first):
    check(reader.opened.wait(30), "a stream opens")
for _ in range(3):
    jobs.append(submit(acme))
first.join(60)
check(succeeded(first.events) >= set(jobs[:3]), "the first connection saw three jobs succeed")
last_id = first.events[-1][0]
# While the client is away: three more jobs, all done before it comes back.
for _ in range(3):
    jobs.append(submit(acme))
for job_id in jobs[3:]:
    wait_done(acme, job_id)
resumed = Reader(acme, "/v1/events", lambda events: succeeded(events) >= set(jobs[3:]), headers={"Last-Event-ID": last_id})
resumed.start()
resumed.join(60)
control.join(60)
check(succeeded(control.events) >= set(jobs), "the stream left open saw all six jobs succeed")
joined = [event[0] for event in first.events] + [event[0] for event in resumed.events]
expected = [event[0] for event in control.events]
check(joined == expected,
      "first connection + resumed one == the stream left open: no gap, no repeat")
check(len(set(joined)) == len(joined), "no event id twice")
check(not any(name == "missed" for _, name, _ in resumed.events), "nothing reported missed")
for job_id in jobs:
    states = [to for job_, to in transitions(first.events + resumed.events) if job_ == job_id]
    check(states == ["queued", "leased", "succeeded"], f"{job_id}: queued, leased, succeeded once each, in order")

# 3. Tenant isolation: the other tenant's stream never showed acme's jobs, and shows its own.
own = submit(other)
wait_done(other, own)
deadline = time.time() + 20
while time.time() < deadline and own not in succeeded(other_stream.events):
    time.sleep(0.1)
shown = {job_ for job_, _ in transitions(other_stream.events)}
check(own in shown, "the other tenant sees its own job")
check(not (shown & set(jobs + [job])), "the other tenant never sees acme's jobs")
status, _ = request(base, other, "GET", "/v1/events?tenant=acme")
check(status == 403, "nor may it ask for them")

print("sse: all checks passed")
