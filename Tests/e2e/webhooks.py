"""Webhooks end to end: a receiver that verifies every delivery with the `standardwebhooks`
package, down and then up; rotation; 410; replay; dead-lettering; the SSRF guard.

Usage: webhooks.py BASE_URL API_KEY   (run by Tests/sluiceTests/SDKTests.swift against `sluice up`
with webhooks.schedule [0s, 1s, 1s, 1s, 1s, 1s], jitter 0, allow_cidrs [127.0.0.0/8], and a
provider `mock`). Exits non-zero, naming the check, at the first failure.
"""
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

from e2e_support import check, eventually, request

base, key = sys.argv[1], sys.argv[2]
prefix = "_".join(key.split("_")[:2])


def api(method, path, body=None):
    status, raw = request(base, key, method, path, body)
    return status, json.loads(raw)


secret = api("GET", f"/v1/keys/{prefix}/webhook-secret")[1]["secret"]
check(secret.startswith("whsec_"), "the key has a whsec_ secret")

# The receiver: records every request, verified with the secrets it knows.
received = []  # (path, webhook-id, verified by which secrets, payload)
answers = {"/hook": 200, "/gone": 410, "/broken": 500}
secrets = {"first": secret}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {name.lower(): value for name, value in self.headers.items()}
        verified = []
        for name, value in list(secrets.items()):
            try:
                Webhook(value).verify(body, headers)
                verified.append(name)
            except Exception:
                pass
        received.append((self.path, headers.get("webhook-id"), verified, json.loads(body)))
        self.send_response(answers.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args):
        pass


with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
hook = f"http://127.0.0.1:{port}"


def submit(path, n=1):
    ids = []
    for i in range(n):
        status, body = api("POST", "/v1/jobs", {"lane": "mock/gpt-4o-mini", "callback_url": hook + path,
                                                "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{i}"}]}})
        check(status == 202, f"submit with a callback to {path}")
        ids.append(body["id"])
    return ids


def deliveries(job):
    return api("GET", f"/v1/webhooks/deliveries?job={job}")[1]["data"]


def status_of(job):
    found = deliveries(job)
    return found[0]["status"] if found else None


# 1. The receiver is down: the deliveries fail and wait for their next slot.
jobs = submit("/hook", 20)
check(eventually(lambda: all(len(deliveries(j)) == 1 and deliveries(j)[0]["attempts"] >= 1 for j in jobs)),
      "every delivery tried while the receiver is down")
first = deliveries(jobs[0])[0]
check(first["status"] == "pending" and first["last_error"], "a failed attempt is recorded, still pending")

# 2. Up again: every delivery arrives, verified, with the same webhook-id on each retry.
server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
check(eventually(lambda: len({r[1] for r in received if r[0] == "/hook"}) == 20), "all 20 arrive once the receiver is up")
check(all(r[2] == ["first"] for r in received), "every delivery verifies with standardwebhooks")
for job in jobs:
    mine = [r for r in received if r[3]["data"]["id"] == job]
    check(mine[0][1] == "msg_" + job and mine[0][3]["type"] == "job.succeeded", f"{job}: webhook-id and type")
    check(mine[0][3]["data"]["status"] == "succeeded" and "result" in mine[0][3]["data"], f"{job}: the payload is the job")
    record = deliveries(job)[0]
    check(record["status"] == "delivered" and record["attempts"] >= 2 and record["id"] == "msg_" + job,
          f"{job}: delivered after {record['attempts']} attempts, one webhook-id")

# 3. Rotation: both signatures are sent while the old secret still counts.
rotated = api("POST", f"/v1/keys/{prefix}/webhook-secret/rotate")[1]
check(rotated["secret"] != secret and rotated["previous"] == secret, "rotation keeps the previous secret")
secrets["second"] = rotated["secret"]
[job] = submit("/hook")
check(eventually(lambda: any(r[3]["data"]["id"] == job for r in received)), "a delivery after rotation arrives")
check([r for r in received if r[3]["data"]["id"] == job][0][2] == ["first", "second"], "it verifies with the old and the new secret")

# 4. 410 disables the endpoint; a replay enables it again, with the same webhook-id.
[gone] = submit("/gone")
check(eventually(lambda: status_of(gone) == "disabled"), "410 disables the endpoint")
[later] = submit("/gone")
check(eventually(lambda: status_of(later) == "disabled"), "a later delivery to it is not sent")
check(len([r for r in received if r[0] == "/gone"]) == 1, "the disabled endpoint got one request only")
answers["/gone"] = 200
status, replay = api("POST", f"/v1/webhooks/deliveries/msg_{later}/retry")
check(status == 202 and replay["status"] == "pending", "a replay is accepted")
check(eventually(lambda: status_of(later) == "delivered"), "the replay is delivered")
check([r for r in received if r[0] == "/gone"][-1][1] == "msg_" + later, "the replay keeps its webhook-id")

# 5. Always 500: dead-lettered once the schedule runs out.
[broken] = submit("/broken")
check(eventually(lambda: status_of(broken) == "dead", timeout=30), "an endpoint that keeps failing is dead-lettered")
check(deliveries(broken)[0]["attempts"] == 6 and deliveries(broken)[0]["last_status_code"] == 500, "after every attempt of the schedule")

# 6. The SSRF guard, at submit.
for url in ["http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x", "http://[fd00::1]/x", "http://[::ffff:192.168.1.1]/x"]:
    status, body = api("POST", "/v1/jobs", {"lane": "mock/gpt-4o-mini", "callback_url": url, "request": {}})
    check(status == 422 and body["error"]["param"] == "callback_url", f"{url} is refused with 422")

server.shutdown()
print("webhooks: all checks passed")
