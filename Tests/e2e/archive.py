"""The archive and the usage ledger end to end: a job outlives its result TTL in Redis and is
served from SQLite with the same JSON; its timeline and webhook delivery too; /v1/usage.

Usage: archive.py BASE_URL API_KEY   (run by Tests/sluiceTests/SDKTests.swift against `sluice up`
with queue.result_ttl 2s, provider `mock` with model gpt-4o-mini priced, webhooks allowed to
loopback). Exits non-zero, naming the check, at the first failure.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler

from e2e_support import check, request, serve

base, admin = sys.argv[1], sys.argv[2]


def call(method, path, body=None, key=admin):
    return request(base, key, method, path, body)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = f"http://127.0.0.1:{serve(Receiver)}/hook"

# A key of another tenant, to check that the archive keeps tenants apart.
status, body = call("POST", "/v1/keys", {"tenant": "other", "scopes": ["submit", "read"]})
other = json.loads(body)["key"]

status, body = call("POST", "/v1/jobs", {"lane": "mock/gpt-4o-mini", "callback_url": hook, "metadata": {"order": 7},
                                         "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}})
check(status == 202, "a job is accepted")
job = json.loads(body)["id"]
status, live = call("GET", f"/v1/jobs/{job}?wait=20")
check(status == 200 and json.loads(live)["status"] == "succeeded", "it succeeds")
_, live_events = call("GET", f"/v1/jobs/{job}/events")
check([e["status"] for e in json.loads(live_events)["data"]] == ["queued", "leased", "succeeded"], "its timeline")

# Past the 2 s result TTL the job hash is gone from Redis; the archive answers instead.
end = time.time() + 20
archived = None
while time.time() < end:
    _, deliveries = call("GET", f"/v1/webhooks/deliveries?job={job}")
    data = json.loads(deliveries).get("data", [])
    if data and data[0].get("archived"):
        archived = data[0]
        break
    time.sleep(0.2)
check(archived is not None and archived["status"] == "delivered" and archived["last_status_code"] == 204,
      "the webhook delivery, gone from Redis, is served from the delivery log")
time.sleep(2.5)
status, later = call("GET", f"/v1/jobs/{job}")
check(status == 200 and later == live, "after the result TTL, GET /v1/jobs/{id} serves the same JSON, byte for byte, from the archive")
status, later_events = call("GET", f"/v1/jobs/{job}/events")
check(status == 200 and json.loads(later_events) == json.loads(live_events), "and the same timeline")
status, body = call("POST", f"/v1/jobs/{job}/cancel")
check(status == 409 and "succeeded" in body.decode(), "cancelling an archived job is 409, naming its state")
status, _ = call("GET", f"/v1/jobs/{job}", key=other)
check(status == 404, "another tenant's key gets 404 for an archived job")
status, _ = call("GET", "/v1/jobs/job_00000000_01J00000000000000000000000")
check(status in (400, 404), "an unknown job is still 404")

# The usage ledger.
status, body = call("GET", "/v1/usage?group_by=model")
usage = json.loads(body)
row = {r["model"]: r for r in usage["data"]}.get("gpt-4o-mini")
check(status == 200 and row and row["requests"] == 1 and row["succeeded"] == 1 and row["input_tokens"] > 0, "usage by model")
expected = (row["input_tokens"] * 0.15 + row["output_tokens"] * 0.6) / 1e6
check(abs(row["cost_usd"] - expected) < 1e-6 and abs(usage["total"]["cost_usd"] - expected) < 1e-6, "priced from the config")
status, body = call("GET", "/v1/usage?group_by=key")
check(status == 200 and json.loads(body)["data"][0]["key"] == "_".join(admin.split("_")[:2]), "usage by key names the key's prefix")
status, body = call("GET", "/v1/usage?from=2020-01-01&to=2020-02-01")
check(status == 200 and json.loads(body)["data"] == [], "a window with no usage is empty")
status, body = call("GET", "/v1/usage", key=other)
check(status == 200 and json.loads(body)["data"] == [] and json.loads(body)["tenant"] == "other", "another tenant sees only its own")
status, body = call("GET", "/v1/usage?group_by=colour")
check(status == 400 and json.loads(body)["error"]["param"] == "group_by", "a bad group_by is 400, naming it")
status, body = call("GET", "/v1/usage?from=2030-01-01&to=2020-01-01")
check(status == 400, "from after to is 400")
status, body = call("GET", "/v1/usage?tenant=default", key=other)
check(status == 403, "another tenant's usage needs admin")

print("archive: all checks passed")
