"""Webhook signatures of both kinds end to end: a receiver verifies HMAC (`v1`) entries with the
`standardwebhooks` package and Ed25519 (`v1a`) entries with `cryptography`'s Ed25519PublicKey
against the specification's construction (the package has no v1a), through a rotation from
HMAC to Ed25519 and one from Ed25519 to Ed25519; a tampered body verifies with neither.

Usage: webhook_signatures.py BASE_URL API_KEY   (run by Tests/sluiceTests/WebhookSignatureE2ETests.swift
against `sluice up` with webhooks.allow_cidrs [127.0.0.0/8] and a provider `mock`). Exits
non-zero, naming the check, at the first failure.
"""
import base64
import json
import sys
from http.server import BaseHTTPRequestHandler

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook

from e2e_support import check, eventually, request, serve

base, key = sys.argv[1], sys.argv[2]
prefix = "_".join(key.split("_")[:2])


def api(method, path, body=None):
    status, raw = request(base, key, method, path, body)
    check(b"whsk_" not in raw, f"{method} {path}: no private key in the answer")
    return status, json.loads(raw)


def verify_v1a(public_key, body, headers):
    """True when a v1a entry of webhook-signature is `public_key`'s (whpk_…) Ed25519 signature of
    "id.timestamp.body" (the construction the specification defines for v1 too)."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    for entry in headers["webhook-signature"].split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(signature), signed)
            return True
        except (InvalidSignature, ValueError):
            pass
    return False


def verify(verifier, body, headers):
    """Whether `verifier` (a whsec_ secret or a whpk_ public key) verifies the delivery."""
    if verifier.startswith("whpk_"):
        return verify_v1a(verifier, body, headers)
    try:
        Webhook(verifier).verify(body, headers)
        return True
    except Exception:
        return False


received = []  # (headers, body)


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append(({name.lower(): value for name, value in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = f"http://127.0.0.1:{serve(Receiver)}/hook"


def deliver(note):
    """Submits a job with a callback; the delivery of it, once it arrived."""
    status, job = api("POST", "/v1/jobs", {"lane": "mock/gpt-4o-mini", "callback_url": hook,
                                           "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": note}]}})
    check(status == 202, f"submit ({note})")
    mine = lambda: [r for r in received if json.loads(r[1])["data"]["id"] == job["id"]]
    check(eventually(lambda: mine(), timeout=30), f"the delivery of {note} arrives")
    return mine()[0]


# 1. HMAC, the default: v1 only, verified by standardwebhooks.
path = f"/v1/keys/{prefix}/webhook-secret"
status, first = api("GET", path)
check(status == 200 and first["kind"] == "hmac" and first["secret"].startswith("whsec_") and first["public_key"] is None,
      "a key's secret is HMAC by default")
headers, body = deliver("hmac")
check(headers["webhook-signature"].startswith("v1,") and " " not in headers["webhook-signature"], "one v1 entry")
check(verify(first["secret"], body, headers), "standardwebhooks verifies the HMAC delivery")

# 2. Rotation to Ed25519: the public key is shown (never the private one); both entries are sent.
status, rotated = api("POST", path + "/rotate", {"kind": "ed25519"})
check(status == 200 and rotated["kind"] == "ed25519" and rotated["secret"] is None, "rotated to ed25519, no secret shown")
public_key = rotated["public_key"]
check(public_key.startswith("whpk_") and len(base64.b64decode(public_key[5:])) == 32, "a whpk_ of 32 bytes")
check(rotated["previous"] == first["secret"] and rotated["previous_kind"] == "hmac", "the previous is the HMAC secret")
check(api("GET", path)[1]["public_key"] == public_key, "GET publishes the public key")
headers, body = deliver("rotation to ed25519")
entries = headers["webhook-signature"].split(" ")
check(len(entries) == 2 and entries[0].startswith("v1a,") and entries[1].startswith("v1,"), "both entries: v1a then v1")
check(verify(public_key, body, headers), "cryptography verifies the v1a entry with the public key")
check(verify(first["secret"], body, headers), "standardwebhooks still verifies the v1 entry with the old secret")

# 3. Tampered: a changed body, or another key, verifies with neither.
tampered = body.replace(b"rotation", b"rotatiom")
check(tampered != body, "the body was changed")
check(not verify(public_key, tampered, headers), "a tampered body fails the v1a check")
check(not verify(first["secret"], tampered, headers), "a tampered body fails the v1 check")
other = "whpk_" + base64.b64encode(bytes(32)).decode()
check(not verify(other, body, headers), "another public key does not verify")

# 4. Ed25519 to Ed25519: two v1a entries, each with its own key.
status, again = api("POST", path + "/rotate", {"kind": "ed25519"})
check(again["previous"] == public_key and again["previous_kind"] == "ed25519" and again["public_key"] != public_key,
      "the previous Ed25519 key is shown by its public key")
headers, body = deliver("ed25519 to ed25519")
check([e.split(",")[0] for e in headers["webhook-signature"].split(" ")] == ["v1a", "v1a"], "two v1a entries")
check(verify(again["public_key"], body, headers) and verify(public_key, body, headers), "each public key verifies")
check(not verify(first["secret"], body, headers), "the HMAC secret no longer verifies (it is two rotations old)")

# 5. A bad kind is a 400 naming the field.
status, error = api("POST", path + "/rotate", {"kind": "rsa"})
check(status == 400 and error["error"]["param"] == "kind", "kind rsa is refused, naming 'kind'")

print("webhook signatures: all checks passed")
