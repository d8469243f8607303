"""Helpers shared by the end-to-end scripts (each imports them from beside itself)."""
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer


def check(condition, what):
    """Prints `ok: what`, or `FAILED: what` and exits 1."""
    if not condition:
        print("FAILED:", what)
        sys.exit(1)
    print("ok:", what)


def request(base, key, method, path, body=None):
    """One API call with a bearer key and an optional JSON body: (status, the body's bytes)."""
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def eventually(condition, timeout=20):
    """Whether `condition()` holds within `timeout` seconds, checked every 0.1 s."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def serve(handler):
    """Serves `handler` (a BaseHTTPRequestHandler class) on a free loopback port, in a thread; the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def new_key(base, admin, tenant, scopes=("submit", "read")):
    """A key for `tenant`, created by the admin key over the API."""
    status, body = request(base, admin, "POST", "/v1/keys", {"tenant": tenant, "scopes": list(scopes)})
    check(status in (200, 201), f"an admin creates a key for {tenant} ({status})")
    return json.loads(body)["key"]
