"""Hostile input against a real `sluice up` (issue 11, item 11): every request that once took the
process down, a hostile provider and a hostile webhook receiver (test servers run here), unknown
lanes, SSRF forms of private addresses, and one tenant reading another's jobs, events,
deliveries, files, batches and usage. Each must get a clear 4xx with a JSON error body (naming
the field where there is one), or be survived; afterwards /healthz still answers and a plain
demo job still succeeds.

Usage: hostile.py BASE_URL ADMIN_KEY PROVIDER_PORT [--only NAME,NAME] [--list]

Run by Tests/sluiceTests/HostileInputTests.swift, whose config this script expects:
- server: { idle_timeout: 3s, max_waits_per_key: 4 };
- `mock_provider` on some port and a provider `demo` (kind openai) pointing at it, with model
  gpt-4o-mini (the batch lines name it);
- providers served by the hostile provider this script runs on PROVIDER_PORT (loopback):
  `hostile` (base_url http://127.0.0.1:PORT/hostile/v1, max_pause 2s, breaker open_for 2s):
      200 with retry-after-ms 1e300, x-ratelimit-reset-requests 9999999999999h (nothing
      remaining) and usage near Int64.max;
  `hostile-usage` (…/usage/v1): 200 with usage token counts near Int64.max, nothing else;
  `hostile-429` (…/only429/v1): only 429 with Retry-After: 2;
  `hf` (kind huggingface, …/hf): records the paths it is called on;
- webhooks: { schedule: [0s, 1s, 1s, 1s, 1s, 1s], jitter: 0, allow_cidrs: [127.0.0.0/8] }.
The tenants' keys (hostile-a, hostile-b, hostile-peer; scopes submit, read) are created here
with the admin key. Every check is a named function; the script prints one line per check and
`hostile: N passed, M failed`, and exits 1 if any failed. If sluice stops answering /healthz
after a check, that check is blamed and the rest are reported as not run (failed).
"""
import http.client
import ipaddress
import json
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INT64_MIN = -9223372036854775808
INT64_MAX = 9223372036854775807
TERMINAL = {"succeeded", "failed", "cancelled", "expired", "dead"}

args = [a for a in sys.argv[1:] if not a.startswith("--")]
options = {a.split("=", 1)[0]: (a.split("=", 1)[1] if "=" in a else "") for a in sys.argv[1:] if a.startswith("--")}
if "--only" in sys.argv:  # --only NAME,NAME as two words
    options["--only"] = sys.argv[sys.argv.index("--only") + 1]
    args = [a for a in args if a != options["--only"]]
if len(args) < 3 and "--list" not in options:
    print(__doc__)
    sys.exit(2)
BASE, ADMIN, PROVIDER_PORT = (args + ["", "", "0"])[:3]
PARSED = urllib.parse.urlsplit(BASE)
HOST, PORT = PARSED.hostname, PARSED.port or 80


# ---------------------------------------------------------------------------------------------
# HTTP helpers (every call bounded by a timeout; nothing leaves loopback)

class Answer:
    def __init__(self, status, headers, body, error=None, seconds=0.0):
        self.status, self.headers, self.body, self.error, self.seconds = status, headers, body, error, seconds

    def json(self):
        try:
            return json.loads(self.body)
        except Exception:
            return None

    def __str__(self):
        if self.status is None:
            return f"no answer ({self.error}) after {self.seconds:.1f}s"
        text = self.body[:400].decode("utf-8", "replace")
        return f"{self.status} {text!r}"


def call(method, path, key=None, body=None, headers=None, raw=None, timeout=15):
    """One request: (Answer). `body` is sent as JSON, `raw` as bytes."""
    sent = dict(headers or {})
    if key:
        sent["Authorization"] = f"Bearer {key}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    started = time.time()
    connection = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(),
                      seconds=time.time() - started)
    except Exception as error:  # refused, reset, timed out: sluice may be down
        return Answer(None, {}, b"", error=f"{type(error).__name__}: {error}", seconds=time.time() - started)
    finally:
        connection.close()


class Failure(Exception):
    pass


def expect(condition, what):
    if not condition:
        raise Failure(what)


def expect_error(answer, statuses, field=None, what=""):
    """A clear 4xx (one of `statuses`) with `{"error": {"type", "message", ...}}`, naming `field`
    in `param` or `message` when given. Returns the error object."""
    label = f"{what}: " if what else ""
    expect(answer.status in statuses, f"{label}expected {sorted(statuses)}, got {answer}")
    document = answer.json()
    expect(isinstance(document, dict) and isinstance(document.get("error"), dict),
           f"{label}the {answer.status} body is not a JSON error: {answer}")
    error = document["error"]
    expect(isinstance(error.get("message"), str) and error.get("type"), f"{label}the error lacks type or message: {answer}")
    if field:
        named = field.lower() in (str(error.get("param") or "") + " " + error["message"]).lower()
        expect(named, f"{label}the error does not name '{field}': {answer}")
    return error


def eventually(condition, timeout=15, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


def healthy(timeout=3):
    return call("GET", "/healthz", timeout=timeout).status == 200


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hostile"}]}


def submit(key, job, headers=None):
    return call("POST", "/v1/jobs", key, job, headers=headers)


def submitted(key, job):
    """Submits and expects 202; the job's id."""
    answer = submit(key, job)
    expect(answer.status == 202, f"a plain submit was refused: {answer}")
    return answer.json()["id"]


def job_state(key, job_id):
    answer = call("GET", f"/v1/jobs/{job_id}", key)
    return (answer.json() or {}).get("status") if answer.status == 200 else None


def wait_for_state(key, job_id, states, timeout=15):
    seen = {}

    def reached():
        seen["state"] = job_state(key, job_id)
        return seen["state"] in states
    return eventually(reached, timeout), seen.get("state")


def multipart(fields, files, boundary="hostileboundary0123456789"):
    """A multipart/form-data body: (content type, bytes)."""
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f'Content-Type: application/jsonl\r\n\r\n'.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def upload(key, lines):
    content_type, body = multipart({"purpose": "batch"}, {"file": ("hostile.jsonl", "\n".join(json.dumps(l) for l in lines).encode())})
    answer = call("POST", "/v1/files", key, raw=body, headers={"Content-Type": content_type})
    expect(answer.status == 200, f"a plain file upload was refused: {answer}")
    return answer.json()["id"]


BATCH_LINES = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions", "body": CHAT} for i in range(2)]


# ---------------------------------------------------------------------------------------------
# The hostile provider (on PROVIDER_PORT) and the hostile webhook receiver (on a free port)

PROVIDER_CALLS = []  # (time, path)
HOOK_CALLS = []  # (time, path)
LOCK = threading.Lock()


def completion(usage):
    return {"id": "chatcmpl-hostile", "object": "chat.completion", "created": int(time.time()), "model": "gpt-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hostile"}, "finish_reason": "stop"}],
            "usage": usage}


HUGE_USAGE = {"prompt_tokens": INT64_MAX - 1, "completion_tokens": INT64_MAX - 1, "total_tokens": INT64_MAX}


class HostileProvider(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, document, headers=()):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with LOCK:
            PROVIDER_CALLS.append((time.time(), self.path))
        if self.path.startswith("/only429/"):
            self.answer(429, {"error": {"message": "rate limited", "type": "rate_limit_exceeded"}}, [("Retry-After", "2")])
        elif self.path.startswith("/hostile/"):
            self.answer(200, completion(HUGE_USAGE), [
                ("retry-after-ms", "1e300"), ("retry-after", "1e300"),
                ("x-ratelimit-limit-requests", str(INT64_MAX)), ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "9999999999999h"),
                ("x-ratelimit-limit-tokens", "99999999999999999999"), ("x-ratelimit-remaining-tokens", str(INT64_MIN)),
                ("x-ratelimit-reset-tokens", "9999999999999h9999999999999m")])
        elif self.path.startswith("/usage/"):
            self.answer(200, completion(HUGE_USAGE))
        else:
            self.answer(200, completion({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}))

    def log_message(self, *args):
        pass


class HostileReceiver(BaseHTTPRequestHandler):
    """/ok answers 200; /nan, /inf and /huge answer 500 with Retry-After: nan, inf, 1e300."""
    protocol_version = "HTTP/1.1"
    RETRY = {"/nan": "nan", "/inf": "inf", "/huge": "1e300"}

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with LOCK:
            HOOK_CALLS.append((time.time(), self.path))
        status = 200 if self.path == "/ok" else 500
        self.send_response(status)
        if self.path in self.RETRY:
            self.send_header("Retry-After", self.RETRY[self.path])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def start_servers():
    provider = ThreadingHTTPServer(("127.0.0.1", int(PROVIDER_PORT)), HostileProvider)
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), HostileReceiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{receiver.server_address[1]}"


def provider_calls(prefix):
    with LOCK:
        return [t for t, path in PROVIDER_CALLS if path.startswith(prefix)]


def hook_calls(path):
    with LOCK:
        return [t for t, p in HOOK_CALLS if p == path]


# ---------------------------------------------------------------------------------------------
# Setup: the tenants' keys

KEYS = {}


def create_key(tenant):
    answer = call("POST", "/v1/keys", ADMIN, {"tenant": tenant, "scopes": ["submit", "read"]})
    if answer.status != 201:
        raise SystemExit(f"hostile: cannot create a key for {tenant} with the admin key: {answer}")
    return answer.json()["key"]


def prefix_of(key):
    return "_".join(key.split("_")[:2])


# ---------------------------------------------------------------------------------------------
# The checks, in order. Each raises Failure (or anything) to fail.

CHECKS = []


def check(function):
    CHECKS.append(function)
    return function


def int64_min_field(field):
    job = {"lane": "demo", "request": CHAT, field: INT64_MIN}
    expect_error(submit(KEYS["a"], job), {400}, field, f"POST /v1/jobs with {field} {INT64_MIN}")


@check
def job_priority_int64_min():
    int64_min_field("priority")


@check
def job_not_before_int64_min():
    int64_min_field("not_before")


@check
def job_deadline_int64_min():
    int64_min_field("deadline")


@check
def job_max_attempts_int64_min():
    int64_min_field("max_attempts")


@check
def bulk_line_int64_min():
    failures = []
    for field in ["priority", "not_before", "deadline", "max_attempts"]:
        lines = [{"lane": "demo", "request": CHAT}, {"lane": "demo", "request": CHAT, field: INT64_MIN}]
        raw = "\n".join(json.dumps(l) for l in lines).encode()
        answer = call("POST", "/v1/jobs/bulk", KEYS["a"], raw=raw, headers={"Content-Type": "application/jsonl"})
        try:
            error = expect_error(answer, {400}, field, f"bulk line 2 with {field} {INT64_MIN}")
            expect("2" in (str(error.get("param")) + error["message"]), f"bulk {field}: the error does not name line 2: {answer}")
        except Failure as failure:
            failures.append(str(failure))
    expect(not failures, "; ".join(failures))


def facade_wait(value):
    answer = call("POST", "/v1/chat/completions", KEYS["a"], CHAT, headers={"X-Sluice-Wait": value})
    expect_error(answer, {400}, "X-Sluice-Wait", f"POST /v1/chat/completions with X-Sluice-Wait: {value}")


@check
def facade_wait_inf():
    facade_wait("inf")


@check
def facade_wait_1e300():
    facade_wait("1e300")


@check
def facade_wait_hex_float():
    facade_wait("0x1p80")


def usage_query(query, field):
    expect_error(call("GET", f"/v1/usage?{query}", KEYS["a"]), {400}, field, f"GET /v1/usage?{query}")


@check
def usage_from_1e300():
    usage_query("from=1e300", "from")


@check
def usage_to_inf():
    usage_query("to=inf", "to")


@check
def usage_to_twenty_digits():
    usage_query("to=99999999999999999999", "to")


@check
def batch_completion_window_1e300h():
    file_id = upload(KEYS["a"], BATCH_LINES)
    answer = call("POST", "/v1/batches", KEYS["a"],
                  {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "1e300h"})
    expect_error(answer, {400}, "completion_window", "POST /v1/batches with completion_window 1e300h")


@check
def demo_max_tokens_int64_max():
    """The mock provider runs inside `sluice up`: a request it cannot honour must not take it down."""
    request = dict(CHAT, max_tokens=INT64_MAX)
    answer = submit(KEYS["a"], {"lane": "demo", "request": request, "max_attempts": 1})
    if answer.status != 202:  # refusing it up front is fine too, if clearly
        expect_error(answer, {400, 422}, None, "a demo job with max_tokens Int64.max")
        return
    job_id = answer.json()["id"]
    ended, state = wait_for_state(KEYS["a"], job_id, TERMINAL, timeout=15)
    expect(healthy(), "sluice stopped answering /healthz after a demo job with max_tokens Int64.max")
    expect(ended, f"a demo job with max_tokens Int64.max did not end within 15 s (state {state})")


@check
def multipart_long_boundary():
    """A boundary of 8,000 dashes over 5 MB of dashes: a prompt 4xx (RFC 2046 caps a boundary at 70)."""
    boundary = "-" * 8000
    body = b"-" * (5 << 20)
    answer = call("POST", "/v1/files", KEYS["a"], raw=body,
                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=60)
    expect_error(answer, {400, 413, 415, 422}, None, "an 8,000-dash multipart boundary")
    expect(answer.seconds < 5, f"the 8,000-dash boundary took {answer.seconds:.1f} s to refuse (at most 5 s)")


@check
def oversized_body_written_before_reading():
    """120 MB to POST /v1/jobs by a client that writes the whole body before reading (urllib does):
    a prompt 413, and the connection closed (or the rest read), never a hang."""
    total = 120 << 20
    chunk = b" " * (1 << 20)
    sock = socket.create_connection((HOST, PORT), timeout=5)
    started = time.time()
    received = b""
    closed = False
    deadline = started + 20
    try:
        sock.sendall((f"POST /v1/jobs HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {KEYS['a']}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {total}\r\n\r\n").encode())
        sent = 0
        stalled = False
        while sent < total and time.time() < deadline:
            # A write-first client: keep writing; only what is already there is read (so that a
            # reset does not discard an answer the server gave).
            if select.select([sock], [], [], 0)[0]:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                received += data
            try:
                sock.settimeout(max(0.1, min(5, deadline - time.time())))
                sock.sendall(chunk)
                sent += len(chunk)
            except socket.timeout:
                stalled = True  # the server stopped reading
                break
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        # Then read the answer, and wait for the connection to close (or the response to end).
        while time.time() < deadline and not closed:
            sock.settimeout(max(0.1, deadline - time.time()))
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not data:
                closed = True
                break
            received += data
            if sent >= total and b"\r\n\r\n" in received:
                break  # the whole body was read: an answer is enough
    finally:
        sock.close()
    elapsed = time.time() - started
    head = received.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    expect(head.startswith("HTTP/1.1 413"), f"no 413 for 120 MB written before reading (after {elapsed:.1f} s, "
                                            f"closed={closed}, stalled={stalled}): {received[:300]!r}")
    expect(closed or sent >= total, f"413 given but the connection stayed open and unread after {elapsed:.1f} s "
                                    f"(a write-first client hangs): {received[:300]!r}")
    expect(elapsed < 15, f"the 413 took {elapsed:.1f} s")
    body = received.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in received else b""
    expect(not body or b'"error"' in body, f"the 413 body is not a JSON error: {body[:200]!r}")


def unknown_lane(lane):
    answer = submit(KEYS["a"], {"lane": lane, "request": CHAT})
    error = expect_error(answer, {400}, "lane", f"a job for lane {lane!r}")
    return error


@check
def lane_nosuch():
    unknown_lane("nosuch/x1")


@check
def lane_dot_dot_admin():
    unknown_lane("demo/../../admin")


@check
def lane_hf_path_traversal():
    before = len(provider_calls("/hf"))
    unknown_lane("hf/../../api/x")
    time.sleep(1)
    with LOCK:
        outside = [p for _, p in PROVIDER_CALLS if "/api/x" in p or (p.startswith("/hf") and "/models/" not in p)]
    expect(not outside, f"the worker called the hf provider outside its model path: {outside}")
    expect(len(provider_calls("/hf")) == before, "the hf provider was called for a refused lane")


def strings_in(value):
    """Every string in a JSON document (keys and values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


@check
def unknown_lanes_not_listed():
    answer = call("GET", "/v1/queues", ADMIN)
    expect(answer.status == 200 and answer.json() is not None, f"GET /v1/queues: {answer}")
    seen = set(strings_in(answer.json()))
    listed = [lane for lane in ["nosuch/x1", "demo/../../admin", "hf/../../api/x"] if lane in seen]
    expect(not listed, f"lanes nobody serves are listed in /v1/queues: {listed}")


@check
def priority_above_key_max():
    """A key's max_priority defaults to 0: a tenant's priority-100 job is refused with 403
    naming priority (what JobAdmission does: a permission, not a malformed request). Raised
    to 10 by an admin, 10 is accepted and 11 refused; an absurd max_priority is a 400."""
    answer = submit(KEYS["a"], {"lane": "demo", "request": CHAT, "priority": 100})
    error = expect_error(answer, {403}, "priority", "priority 100 from a key without max_priority")
    expect("max_priority" in error["message"], f"the refusal does not say max_priority: {answer}")
    key = f"/v1/keys/{prefix_of(KEYS['a'])}"
    expect_error(call("PATCH", key, ADMIN, {"limits": {"max_priority": INT64_MIN}}), {400}, "max_priority",
                 f"PATCH max_priority {INT64_MIN}")
    raised = call("PATCH", key, ADMIN, {"limits": {"max_priority": 10}})
    expect(raised.status == 200, f"PATCH max_priority 10: {raised}")
    try:
        ten = submit(KEYS["a"], {"lane": "demo", "request": CHAT, "priority": 10})
        expect(ten.status == 202, f"priority 10 under max_priority 10: {ten}")
        expect_error(submit(KEYS["a"], {"lane": "demo", "request": CHAT, "priority": 11}), {403}, "priority",
                     "priority 11 under max_priority 10")
    finally:
        call("PATCH", key, ADMIN, {"limits": {"max_priority": None}})


@check
def query_numbers_out_of_range():
    """Numbers in query strings and key limits: a 400 naming the parameter, never a trap."""
    failures = []
    job = submitted(KEYS["a"], {"lane": "demo", "request": CHAT})
    for path, field in [("/v1/jobs?limit=99999999999999999999", "limit"), ("/v1/files?limit=1e300", "limit"),
                        (f"/v1/batches?limit={INT64_MIN}", "limit"), ("/v1/messages/batches?limit=1e300", "limit"),
                        (f"/v1/jobs/{job}?wait=inf", "wait"), (f"/v1/jobs/{job}?wait=nan", "wait"),
                        (f"/v1/jobs/{job}?wait=1e300", "wait"), (f"/v1/usage?from={INT64_MIN}", "from")]:
        try:
            expect_error(call("GET", path, KEYS["a"]), {400}, field, f"GET {path}")
        except Failure as failure:
            failures.append(str(failure))
    key = f"/v1/keys/{prefix_of(KEYS['b'])}"
    for limits, field in [({"submit_rate": 1e300}, "submit_rate"), ({"submit_rate": 1, "submit_burst": INT64_MAX}, "submit_burst"),
                          ({"max_queued": INT64_MIN}, "max_queued")]:
        try:
            expect_error(call("PATCH", key, ADMIN, {"limits": limits}), {400}, field, f"PATCH limits {limits}")
        except Failure as failure:
            failures.append(str(failure))
    call("PATCH", key, ADMIN, {"limits": {"submit_rate": None, "submit_burst": None, "max_queued": None}})
    expect(not failures, "; ".join(failures))


SSRF_FORMS = [
    # Private 10.0.0.1 inside IPv6 forms: 6to4, Teredo, local-use NAT64, IPv4-translated.
    "http://[2002:a00:1::]/", "http://[2001:0:a00:1::]/", "http://[64:ff9b:1::a00:1]/", "http://[::ffff:0:a00:1]/",
    # The plain address, and names that resolve to it (inet_aton forms), whose address the
    # client never wrote.
    "http://10.0.0.1/", "http://10.1/", "http://0x0a000001/", "http://167772161/",
]


def address_shown(message, url):
    """The address forms `message` shows beyond the host as the client wrote it (echoing the
    client's own text reveals nothing; the address it resolves to, or embeds, would)."""
    host = url.split("//", 1)[1].split("/", 1)[0].strip("[]")
    rest = message.lower().replace(host.lower(), "")
    forms = {"10.0.0.1", "a00:1", "0a00:0001"}
    try:
        address = ipaddress.ip_address(host)
        forms |= {address.compressed, address.exploded}
    except ValueError:
        pass
    return sorted(form for form in forms if form.lower() in rest)


@check
def ssrf_forms_refused_without_the_address():
    failures = []
    for url in SSRF_FORMS:
        answer = submit(KEYS["a"], {"lane": "demo", "request": CHAT, "callback_url": url})
        try:
            error = expect_error(answer, {400, 403, 422}, "callback_url", f"callback_url {url}")
            shown = address_shown(error["message"], url)
            expect(not shown, f"callback_url {url}: the message shows the address ({shown}): {error['message']!r}")
        except Failure as failure:
            failures.append(str(failure))
    # A batch's callback_url goes through the same guard.
    file_id = upload(KEYS["a"], BATCH_LINES)
    for url in ["http://[2002:a00:1::]/", "http://10.1/"]:
        answer = call("POST", "/v1/batches", KEYS["a"], {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                         "completion_window": "24h", "callback_url": url})
        try:
            error = expect_error(answer, {400, 403, 422}, "callback_url", f"a batch's callback_url {url}")
            shown = address_shown(error["message"], url)
            expect(not shown, f"a batch's callback_url {url}: the message shows the address ({shown}): {error['message']!r}")
        except Failure as failure:
            failures.append(str(failure))
    expect(not failures, "; ".join(failures))


@check
def hostile_provider_headers_survived():
    """200s with retry-after-ms 1e300, a reset of 9999999999999h with nothing remaining and usage
    near Int64.max: the first job succeeds; the pause they ask for is capped (max_pause 2s in
    this config, then the breaker probes), so the jobs behind it end too; sluice stays up and
    /v1/providers still renders the provider."""
    job = {"lane": "hostile/gpt-x", "request": dict(CHAT, model="gpt-x"), "max_attempts": 5}
    first = submitted(KEYS["peer"], job)
    ok, state = wait_for_state(KEYS["peer"], first, TERMINAL, timeout=15)
    expect(healthy(), "sluice stopped answering /healthz after the hostile provider's first answer")
    expect(ok and state == "succeeded", f"the hostile provider's first job: {state} (expected succeeded)")
    others = [submitted(KEYS["peer"], job) for _ in range(2)]
    states = {}
    for other in others:
        states[other] = wait_for_state(KEYS["peer"], other, TERMINAL, timeout=20)[1]
    expect(healthy(), "sluice stopped answering /healthz after more jobs to the hostile provider")
    answer = call("GET", "/v1/providers", ADMIN)
    expect(answer.status == 200 and answer.json() is not None, f"GET /v1/providers after the hostile answers: {answer}")
    for other in others:
        call("POST", f"/v1/jobs/{other}/cancel", KEYS["peer"])
    expect(all(s in TERMINAL for s in states.values()),
           f"jobs behind a provider asking for a 1e300 ms pause did not end within 20 s with max_pause 2s: {states}")


@check
def hostile_provider_usage_sums_survived():
    """Three answers each with usage near Int64.max: the jobs succeed, the ledger does not wrap
    (no negative totals) and /v1/usage still answers."""
    jobs = [submitted(KEYS["peer"], {"lane": "hostile-usage/gpt-x", "request": dict(CHAT, model="gpt-x")}) for _ in range(3)]
    states = {}
    for job in jobs:
        states[job] = wait_for_state(KEYS["peer"], job, TERMINAL, timeout=15)[1]
    expect(healthy(), "sluice stopped answering /healthz after answers with usage near Int64.max")
    expect(all(s == "succeeded" for s in states.values()), f"jobs with usage near Int64.max: {states}")
    answers = {}

    def booked():
        answers["usage"] = call("GET", "/v1/usage?group_by=model", KEYS["peer"])
        total = (answers["usage"].json() or {}).get("total", {})
        return answers["usage"].status == 200 and total.get("requests", 0) >= 3
    expect(eventually(booked, timeout=15), f"GET /v1/usage after usage near Int64.max: {answers.get('usage')}")
    expect(healthy(), "sluice stopped answering /healthz after booking usage near Int64.max")
    total = answers["usage"].json()["total"]
    expect(total["input_tokens"] >= 0 and total["output_tokens"] >= 0 and total["cost_usd"] >= 0,
           f"the usage ledger wrapped around: {total}")


@check
def only_429_provider_is_probed_gently():
    """A provider answering only 429 with Retry-After: 2: after the first burst, at most a few
    requests reach it per pause window, not the lane's whole concurrency every 2 s."""
    jobs = [submitted(KEYS["peer"], {"lane": "hostile-429/gpt-x", "request": dict(CHAT, model="gpt-x"), "max_attempts": 1000})
            for _ in range(40)]
    try:
        expect(eventually(lambda: provider_calls("/only429/"), timeout=10), "no request reached the 429 provider in 10 s")
        time.sleep(1.0)  # the first burst (at most the lane's concurrency) has been answered
        burst = len(provider_calls("/only429/"))
        time.sleep(6.0)
        later = len(provider_calls("/only429/")) - burst
        expect(healthy(), "sluice stopped answering /healthz behind a provider answering only 429")
        expect(later <= 12, f"{later} requests reached the 429-only provider in the 6 s after its first burst of {burst} "
                            f"(Retry-After: 2; at most 12 expected: a probe per window, not the whole concurrency)")
        print(f"    (429 provider: first burst {burst}, then {later} in 6 s)")
    finally:
        for job in jobs:
            call("POST", f"/v1/jobs/{job}/cancel", KEYS["peer"], timeout=5)


@check
def hostile_webhook_receiver_survived():
    """Receivers answering 500 with Retry-After: nan, inf, 1e300: the sender survives and the
    deliveries stay readable, with a sane next attempt."""
    jobs = {path: submitted(KEYS["a"], {"lane": "demo", "request": CHAT, "callback_url": HOOK + path})
            for path in ["/nan", "/inf", "/huge"]}
    expect(eventually(lambda: all(hook_calls(p) for p in jobs), timeout=15),
           f"not every hostile receiver was called within 15 s: { {p: len(hook_calls(p)) for p in jobs} }")
    time.sleep(3)  # the answers are handled, and the retries due after 1 s are sent
    expect(healthy(), "sluice stopped answering /healthz after Retry-After: nan / inf / 1e300 from a receiver")
    problems = []
    for path, job in jobs.items():
        answer = call("GET", f"/v1/webhooks/deliveries?job={job}", KEYS["a"])
        data = (answer.json() or {}).get("data") if answer.status == 200 else None
        if not data:
            problems.append(f"{path}: deliveries {answer}")
            continue
        delivery = data[0]
        next_at = delivery.get("next_attempt_at")
        if delivery.get("attempts", 0) < 1:
            problems.append(f"{path}: no attempt recorded: {delivery}")
        if isinstance(next_at, (int, float)) and not (0 < next_at < time.time() + 366 * 86400):
            problems.append(f"{path}: next_attempt_at {next_at} is not a sane time")
    expect(not problems, "; ".join(problems))
    print(f"    (receiver calls: { {p: len(hook_calls(p)) for p in jobs} })")


@check
def idle_connections_time_out():
    """A connection that sends nothing, or stalls inside a request body, is closed (idle_timeout
    3s in this config), so idle sockets cannot pile up."""
    problems = []
    for what, opening in [("a silent connection", b""),
                          ("a stalled body", (f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEYS['b']}\r\n"
                                              f"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"lane\"").encode())]:
        sock = socket.create_connection((HOST, PORT), timeout=15)
        started = time.time()
        try:
            if opening:
                sock.sendall(opening)
            closed = False
            while time.time() - started < 12:
                try:
                    if not sock.recv(65536):
                        closed = True
                        break
                except (socket.timeout, ConnectionResetError):
                    closed = True
                    break
        finally:
            sock.close()
        elapsed = time.time() - started
        if not closed or elapsed > 10:
            problems.append(f"{what} was still open after {elapsed:.1f} s")
    expect(not problems, "; ".join(problems))


@check
def parked_waits_capped_per_key():
    """Long-polls are capped per key (max_waits_per_key 4 in this config): a fifth gets a prompt
    429 with a JSON error, while another tenant's long-poll still works."""
    later = int(time.time()) + 120
    job = submitted(KEYS["b"], {"lane": "demo", "request": CHAT, "not_before": later})
    mine = submitted(KEYS["a"], {"lane": "demo", "request": CHAT, "not_before": later})
    results = []

    def poll(key, job_id):
        results.append((key, call("GET", f"/v1/jobs/{job_id}?wait=4", key, timeout=15)))
    threads = [threading.Thread(target=poll, args=(KEYS["b"], job)) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the four are parked
        fifth = call("GET", f"/v1/jobs/{job}?wait=4", KEYS["b"], timeout=15)
        other = threading.Thread(target=poll, args=(KEYS["a"], mine))
        other.start()
        for thread in threads + [other]:
            thread.join(20)
    finally:
        for job_id, key in [(job, KEYS["b"]), (mine, KEYS["a"])]:
            call("POST", f"/v1/jobs/{job_id}/cancel", key)
    expect_error(fifth, {429}, None, "a fifth parked long-poll of one key")
    expect(fifth.seconds < 2, f"the fifth long-poll was refused only after {fifth.seconds:.1f} s")
    parked = [a for k, a in results if k == KEYS["b"]]
    expect(len(parked) == 4 and all(a.status == 200 for a in parked), f"the four parked long-polls: {[str(a) for a in parked]}")
    others = [a for k, a in results if k == KEYS["a"]]
    expect(len(others) == 1 and others[0].status == 200, f"another tenant's long-poll meanwhile: {[str(a) for a in others]}")


@check
def batches_go_through_admission():
    """A batch is admitted like a submit of as many jobs: over the key's max_queued, refused."""
    key = f"/v1/keys/{prefix_of(KEYS['b'])}"
    file_id = upload(KEYS["b"], BATCH_LINES)  # two lines
    capped = call("PATCH", key, ADMIN, {"limits": {"max_queued": 1}})
    expect(capped.status == 200, f"PATCH max_queued 1: {capped}")
    try:
        answer = call("POST", "/v1/batches", KEYS["b"], {"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                                         "completion_window": "24h"})
        expect_error(answer, {403, 422, 429}, None, "a two-line batch from a key with max_queued 1")
    finally:
        call("PATCH", key, ADMIN, {"limits": {"max_queued": None}})


# Cross-tenant reads: tenant A's job (with a delivered webhook), file and batch; tenant B asks.

FIXTURE = {}


def fixture():
    if FIXTURE:
        return FIXTURE
    job = submitted(KEYS["a"], {"lane": "demo", "request": CHAT, "callback_url": HOOK + "/ok"})
    ok, state = wait_for_state(KEYS["a"], job, {"succeeded"}, timeout=15)
    expect(ok, f"tenant A's demo job did not succeed: {state}")
    delivered = lambda: any(d.get("status") == "delivered" for d in
                            (call("GET", f"/v1/webhooks/deliveries?job={job}", KEYS["a"]).json() or {}).get("data", []))
    expect(eventually(delivered, timeout=15), "tenant A's webhook was not delivered")
    file_id = upload(KEYS["a"], BATCH_LINES)
    batch = call("POST", "/v1/batches", KEYS["a"], {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"})
    expect(batch.status == 200, f"tenant A's batch: {batch}")
    usage = lambda: ((call("GET", "/v1/usage", KEYS["a"]).json() or {}).get("total") or {}).get("requests", 0) >= 1
    expect(eventually(usage, timeout=15), "tenant A's usage was not booked")
    FIXTURE.update(job=job, file=file_id, batch=batch.json()["id"])
    return FIXTURE


def tenant_b_gets_404(method, path, body=None):
    answer = call(method, path, KEYS["b"], body)
    expect_error(answer, {404}, None, f"tenant B: {method} {path}")


@check
def tenant_b_cannot_read_job():
    tenant_b_gets_404("GET", f"/v1/jobs/{fixture()['job']}")


@check
def tenant_b_cannot_long_poll_job():
    tenant_b_gets_404("GET", f"/v1/jobs/{fixture()['job']}?wait=1")


@check
def tenant_b_cannot_read_events():
    tenant_b_gets_404("GET", f"/v1/jobs/{fixture()['job']}/events")


@check
def tenant_b_cannot_cancel_job():
    tenant_b_gets_404("POST", f"/v1/jobs/{fixture()['job']}/cancel")


@check
def tenant_b_cannot_read_deliveries():
    tenant_b_gets_404("GET", f"/v1/webhooks/deliveries?job={fixture()['job']}")


@check
def tenant_b_cannot_replay_delivery():
    tenant_b_gets_404("POST", f"/v1/webhooks/deliveries/msg_{fixture()['job']}/retry")


@check
def tenant_b_cannot_read_webhook_secret():
    answer = call("GET", f"/v1/keys/{prefix_of(KEYS['a'])}/webhook-secret", KEYS["b"])
    expect_error(answer, {403, 404}, None, "tenant B: tenant A's key's webhook secret")
    expect(b"whsec_" not in answer.body, f"tenant B sees tenant A's webhook secret: {answer}")


@check
def tenant_b_cannot_read_file():
    tenant_b_gets_404("GET", f"/v1/files/{fixture()['file']}")


@check
def tenant_b_cannot_read_file_content():
    tenant_b_gets_404("GET", f"/v1/files/{fixture()['file']}/content")


@check
def tenant_b_cannot_delete_file():
    tenant_b_gets_404("DELETE", f"/v1/files/{fixture()['file']}")


@check
def tenant_b_cannot_read_batch():
    tenant_b_gets_404("GET", f"/v1/batches/{fixture()['batch']}")


@check
def tenant_b_cannot_cancel_batch():
    tenant_b_gets_404("POST", f"/v1/batches/{fixture()['batch']}/cancel")


@check
def tenant_b_lists_show_nothing_of_a():
    f = fixture()
    problems = []
    for path, needle in [("/v1/jobs?limit=100", f["job"]), ("/v1/files", f["file"]), ("/v1/batches", f["batch"])]:
        answer = call("GET", path, KEYS["b"])
        if answer.status != 200:
            problems.append(f"GET {path}: {answer}")
        elif needle.encode() in answer.body:
            problems.append(f"GET {path} lists tenant A's {needle}")
    answer = call("GET", "/v1/jobs?tenant=hostile-a", KEYS["b"])
    if answer.status not in (403, 404) or f["job"].encode() in answer.body:
        problems.append(f"GET /v1/jobs?tenant=hostile-a by tenant B: {answer}")
    expect(not problems, "; ".join(problems))


@check
def tenant_b_usage_excludes_a():
    """Tenant B's usage holds only B's own finished jobs (at most as many as B has), never A's
    rows, whatever the grouping; asking for A's is refused."""
    fixture()
    jobs = (call("GET", "/v1/jobs?limit=100", KEYS["b"]).json() or {}).get("data", [])
    finished = sum(1 for job in jobs if job.get("status") in TERMINAL)
    a_requests = ((call("GET", "/v1/usage", KEYS["a"]).json() or {}).get("total") or {}).get("requests", 0)
    expect(a_requests >= 1, "tenant A's usage is empty: nothing to compare with")
    problems = []
    for group in ["model", "key", "tenant"]:
        answer = call("GET", f"/v1/usage?group_by={group}", KEYS["b"])
        document = answer.json() or {}
        if answer.status != 200:
            problems.append(f"group_by={group}: {answer}")
            continue
        requests = document.get("total", {}).get("requests", 0)
        if requests > finished:
            problems.append(f"group_by={group}: tenant B sees {requests} requests but has {finished} finished jobs "
                            f"(tenant A has {a_requests}): {document.get('total')}")
        if b"hostile-a" in answer.body or prefix_of(KEYS["a"]).encode() in answer.body:
            problems.append(f"group_by={group}: tenant A appears: {answer}")
        if group == "tenant" and any(row.get("tenant") != "hostile-b" for row in document.get("data", [])):
            problems.append(f"group_by=tenant: rows of other tenants: {document.get('data')}")
    answer = call("GET", "/v1/usage?tenant=hostile-a", KEYS["b"])
    if answer.status not in (403, 404):
        problems.append(f"/v1/usage?tenant=hostile-a by tenant B: {answer}")
    expect(not problems, "; ".join(problems))


@check
def webhook_replays_limited_per_key():
    """Replays are limited per key: a burst of 70 replays of one delivery gets 429s, with JSON
    errors, before the 70th (and the receiver is not flooded past the limit)."""
    job = fixture()["job"]
    statuses = []
    for _ in range(70):
        answer = call("POST", f"/v1/webhooks/deliveries/msg_{job}/retry", KEYS["a"], timeout=5)
        statuses.append(answer.status)
        if answer.status == 429:
            expect_error(answer, {429}, None, "a replay over the key's limit")
            break
    expect(429 in statuses, f"70 replays of one delivery were all accepted: {sorted(set(statuses))}")


# Finally: still up, still working.

@check
def healthz_still_answers():
    answer = call("GET", "/healthz", timeout=5)
    expect(answer.status == 200, f"/healthz: {answer}")


@check
def demo_job_still_succeeds():
    job = submitted(KEYS["b"], {"lane": "demo", "request": CHAT})
    ok, state = wait_for_state(KEYS["b"], job, {"succeeded"}, timeout=15)
    expect(ok, f"a plain demo job after all this: {state}")


# ---------------------------------------------------------------------------------------------

def main():
    if "--list" in options:
        print("\n".join(c.__name__ for c in CHECKS))
        return 0
    only = set(filter(None, options.get("--only", "").split(",")))
    unknown = only - {c.__name__ for c in CHECKS}
    if unknown:
        print(f"hostile: no such check: {', '.join(sorted(unknown))}")
        return 2
    global HOOK
    HOOK = start_servers()
    if not eventually(healthy, timeout=20):
        print("hostile: sluice does not answer /healthz at", BASE)
        return 1
    KEYS.update(a=create_key("hostile-a"), b=create_key("hostile-b"), peer=create_key("hostile-peer"))
    passed, failed, down_after = [], [], None
    for function in CHECKS:
        name = function.__name__
        if only and name not in only:
            continue
        if down_after:
            failed.append(name)
            print(f"FAIL {name}: not run: sluice stopped answering after {down_after}")
            continue
        started = time.time()
        try:
            function()
            passed.append(name)
            print(f"ok   {name} ({time.time() - started:.1f}s)", flush=True)
        except Failure as failure:
            failed.append(name)
            print(f"FAIL {name}: {failure}", flush=True)
        except Exception:
            failed.append(name)
            print(f"FAIL {name}: {traceback.format_exc().strip().splitlines()[-1]}", flush=True)
        if not eventually(healthy, timeout=5, step=0.5):
            down_after = name
            if name not in failed:
                passed.remove(name)
                failed.append(name)
            print(f"FAIL {name}: sluice stopped answering /healthz after this check", flush=True)
    print(f"hostile: {len(passed)} passed, {len(failed)} failed")
    if failed:
        print("hostile: failed: " + ", ".join(failed))
        return 1
    print("hostile: all checks passed")
    return 0


HOOK = ""
if __name__ == "__main__":
    sys.exit(main())
