"""The batch APIs, driven by the official SDKs, unchanged but for their base URL: OpenAI's Files
and Batches (a 1,000-request batch, across providers), Anthropic's Message Batches, validation,
cancelling, listing, the batch webhook, and the usage ledger.

Usage: batches.py BASE_URL API_KEY   (run by Tests/sluiceTests/SDKTests.swift against `sluice up`
with providers `mock` (OpenAI-compatible, models gpt-4o-mini and text-embedding-3-small),
`mock-claude` (the same mock as Anthropic, model claude-3-5-haiku), `nowhere` (nothing answers;
model stuck-model), route `smart`, webhooks allowed to loopback, and a price for gpt-4o-mini).
Exits non-zero, naming the check, at the first failure.
"""
import io
import json
import sys
import time
from http.server import BaseHTTPRequestHandler

import anthropic
import openai
from standardwebhooks.webhooks import Webhook

from e2e_support import check, request, serve

base, key = sys.argv[1], sys.argv[2]
prefix = "_".join(key.split("_")[:2])
oa = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=60)
an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=60)


def api(method, path):
    status, body = request(base, key, method, path)
    check(status == 200, f"{method} {path}: {status}")
    return json.loads(body)


def wait_for(fetch, done, timeout=120):
    end = time.time() + timeout
    while True:
        value = fetch()
        if done(value) or time.time() > end:
            return value
        time.sleep(0.25)


def jsonl(lines):
    return io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())


def chat_line(custom_id, model):
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"request {custom_id}"}], "max_tokens": 16}}


# A receiver for the batch webhook, verifying its signature.
secret = api("GET", f"/v1/keys/{prefix}/webhook-secret")["secret"]
received = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        payload = Webhook(secret).verify(body, dict(self.headers))
        received.append((self.headers["webhook-id"], payload))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


hook = f"http://127.0.0.1:{serve(Receiver)}/batch-hook"

# --- OpenAI: 1,000 requests, most to the OpenAI mock by bare model name, some through a route,
# and some to a model only the Anthropic provider serves (translated both ways).
models = ["gpt-4o-mini"] * 8 + ["smart", "claude-3-5-haiku"]
lines = [chat_line(f"req-{i}", models[i % len(models)]) for i in range(1000)]
upload = oa.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")
check(upload.id.startswith("file-") and upload.purpose == "batch" and upload.bytes > 100_000, "files.create stores the input file")
check(oa.files.retrieve(upload.id).filename == "requests.jsonl", "files.retrieve shows it")
started = time.time()
batch = oa.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                          metadata={"run": "e2e"}, extra_body={"callback_url": hook})
check(batch.status in ("validating", "in_progress") and batch.request_counts.total == 1000, "batches.create queues 1,000 requests")
check(batch.metadata == {"run": "e2e"} and batch.expires_at - batch.created_at == 86400, "metadata and expires_at are kept")
batch = wait_for(lambda: oa.batches.retrieve(batch.id), lambda b: b.status in ("completed", "failed", "expired", "cancelled"))
elapsed = time.time() - started
check(batch.status == "completed", f"the batch completed (status {batch.status}, {elapsed:.1f} s)")
check(batch.request_counts.completed == 1000 and batch.request_counts.failed == 0, "request_counts: 1,000 completed, 0 failed")
check(all([batch.in_progress_at, batch.finalizing_at, batch.completed_at]) and batch.error_file_id is None,
      "timestamps in_progress_at, finalizing_at, completed_at are set; no error file")
output = [json.loads(line) for line in oa.files.content(batch.output_file_id).text.splitlines()]
check(len(output) == 1000 and {o["custom_id"] for o in output} == {l["custom_id"] for l in lines}, "the output file has every custom_id once")
check(all(o["response"]["status_code"] == 200 and o["error"] is None and o["id"].startswith("batch_req_") for o in output),
      "every output line is {id, custom_id, response: {status_code 200, request_id, body}, error: null}")
check(all(o["response"]["body"]["choices"][0]["message"]["content"] for o in output),
      "every body is a chat completion, also those an Anthropic provider served")
by_id = {o["custom_id"]: o for o in output}
check(by_id["req-9"]["response"]["body"]["object"] == "chat.completion", "a line served by Anthropic came back OpenAI-shaped")
job = api("GET", f"/v1/jobs/{by_id['req-9']['response']['request_id']}")
check(job["lane"] == "mock-claude/claude-3-5-haiku", "a model only the Anthropic provider lists ran there")
print(f"batch: 1,000 requests completed in {elapsed:.1f} s")

# The webhook: batch.completed, signed, with the batch object.
check(wait_for(lambda: received, lambda r: len(r) > 0, timeout=20), "the batch webhook arrived, signed")
webhook_id, payload = received[0]
check(payload["type"] == "batch.completed" and payload["data"]["id"] == batch.id and webhook_id == "msg_" + batch.id,
      "its type is batch.completed, its data the batch, its id msg_<batch>")

# Embeddings.
emb = oa.files.create(file=("emb.jsonl", jsonl([{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
                                                 "body": {"model": "text-embedding-3-small", "input": f"text {i}"}} for i in range(10)])),
                      purpose="batch")
eb = oa.batches.create(input_file_id=emb.id, endpoint="/v1/embeddings", completion_window="24h")
eb = wait_for(lambda: oa.batches.retrieve(eb.id), lambda b: b.status == "completed", timeout=60)
emb_out = [json.loads(line) for line in oa.files.content(eb.output_file_id).text.splitlines()]
check(eb.status == "completed" and len(emb_out) == 10 and all(o["response"]["body"]["data"][0]["embedding"] for o in emb_out),
      "an embeddings batch completes with embeddings")

# Validation: bad lines fail the batch, and `errors` names each line.
bad = io.BytesIO(("\n".join([
    json.dumps(chat_line("a", "gpt-4o-mini")),
    json.dumps(chat_line("b", "gpt-4o-mini")),
    "{not json",
    json.dumps(chat_line("a", "gpt-4o-mini")),
    json.dumps({**chat_line("e", "gpt-4o-mini"), "url": "/v1/embeddings"}),
    json.dumps(chat_line("f", "no-such-model")),
]) + "\n").encode())
bad_file = oa.files.create(file=("bad.jsonl", bad), purpose="batch")
failed = oa.batches.create(input_file_id=bad_file.id, endpoint="/v1/chat/completions", completion_window="24h")
check(failed.status == "failed" and failed.failed_at, "a file with bad lines fails the batch")
errors = {(e.line, e.code) for e in failed.errors.data}
check(errors == {(3, "invalid_json_line"), (4, "duplicate_custom_id"), (5, "mismatched_endpoint"), (6, "model_not_found")},
      f"errors name each bad line: {sorted(errors)}")
try:
    oa.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    check(False, "an unknown input file is refused")
except openai.NotFoundError:
    check(True, "an unknown input file is refused (404)")
try:
    oa.batches.create(input_file_id=upload.id, endpoint="/v1/completions", completion_window="24h")
    check(False, "an unsupported endpoint is refused")
except openai.BadRequestError as error:
    check("endpoint" in str(error), "an unsupported endpoint is refused (400)")

# Cancelling: requests to a provider that never answers are cancelled; the batch ends cancelled.
stuck = oa.files.create(file=("stuck.jsonl", jsonl([chat_line(f"s{i}", "stuck-model") for i in range(30)])), purpose="batch")
sb = oa.batches.create(input_file_id=stuck.id, endpoint="/v1/chat/completions", completion_window="24h")
cancelling = oa.batches.cancel(sb.id)
check(cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at, "batches.cancel: cancelling")
sb = wait_for(lambda: oa.batches.retrieve(sb.id), lambda b: b.status == "cancelled", timeout=60)
check(sb.status == "cancelled" and sb.cancelled_at and sb.request_counts.completed == 0, "the cancelled batch ends cancelled")
cancelled_lines = [json.loads(line) for line in oa.files.content(sb.error_file_id).text.splitlines()]
check(len(cancelled_lines) == 30 and all(l["error"]["code"] in ("batch_cancelled",) or l["response"] for l in cancelled_lines),
      "its error file accounts for every request")

# Listing, newest first, with `after` paging.
page = oa.batches.list(limit=2)
check(len(page.data) == 2 and page.has_more and page.data[0].id == sb.id, "batches.list pages newest first")
ids = [b.id for b in oa.batches.list(limit=2)]  # iterating a page fetches the next ones
check(len(ids) == len(set(ids)) == 4 and batch.id in ids, "auto-paging lists each batch once")

# Files: delete.
deleted = oa.files.delete(bad_file.id)
check(deleted.deleted, "files.delete")
try:
    oa.files.retrieve(bad_file.id)
    check(False, "a deleted file is gone")
except openai.NotFoundError:
    check(True, "a deleted file is gone")

# --- Anthropic Message Batches: Anthropic-format requests, to the Anthropic provider and (by a
# model only the OpenAI provider lists) translated to OpenAI and back.
requests = [{"custom_id": f"m{i}", "params": {"model": "claude-3-5-haiku" if i % 4 else "gpt-4o-mini", "max_tokens": 32,
                                              "messages": [{"role": "user", "content": f"message {i}"}]}} for i in range(20)]
mb = an.messages.batches.create(requests=requests)
# The answer is the batch as it is when it is read back, and the mock is fast enough that some of
# its 20 requests may already have succeeded by then.
check(mb.id.startswith("msgbatch_") and mb.processing_status in ("in_progress", "ended")
      and mb.request_counts.processing + mb.request_counts.succeeded == 20,
      f"messages.batches.create: {mb.processing_status}, 20 requests ({mb.request_counts.processing} processing)")
mb = wait_for(lambda: an.messages.batches.retrieve(mb.id), lambda b: b.processing_status == "ended", timeout=60)
check(mb.processing_status == "ended" and mb.request_counts.succeeded == 20 and mb.ended_at and mb.results_url,
      "the message batch ended: 20 succeeded, ended_at and results_url set")
results = list(an.messages.batches.results(mb.id))
check(len(results) == 20 and {r.custom_id for r in results} == {r["custom_id"] for r in requests}, "results: every custom_id")
check(all(r.result.type == "succeeded" and r.result.message.content[0].text for r in results),
      "every result is a succeeded Message, also those the OpenAI provider served")
listed = an.messages.batches.list(limit=10)
check(any(b.id == mb.id for b in listed.data), "messages.batches.list shows it")
try:
    an.messages.batches.create(requests=[{"custom_id": "x", "params": {"model": "claude-3-5-haiku", "messages": []}}])
    check(False, "a request without max_tokens is refused")
except anthropic.BadRequestError as error:
    check("max_tokens" in str(error), "a request without max_tokens is refused (400), naming it")
stuck_batch = an.messages.batches.create(requests=[
    {"custom_id": f"x{i}", "params": {"model": "stuck-model", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}}
    for i in range(5)])
canceling = an.messages.batches.cancel(stuck_batch.id)
check(canceling.processing_status in ("canceling", "ended") and canceling.cancel_initiated_at, "messages.batches.cancel: canceling")
stuck_batch = wait_for(lambda: an.messages.batches.retrieve(stuck_batch.id), lambda b: b.processing_status == "ended", timeout=60)
outcomes = [r.result.type for r in an.messages.batches.results(stuck_batch.id)]
check(stuck_batch.request_counts.succeeded == 0 and len(outcomes) == 5 and set(outcomes) <= {"canceled", "errored"},
      f"the cancelled message batch ended; its results say canceled: {outcomes}")
deleted = an.messages.batches.delete(stuck_batch.id)
check(deleted.id == stuck_batch.id and deleted.type == "message_batch_deleted", "messages.batches.delete, once ended")
try:
    an.messages.batches.retrieve(stuck_batch.id)
    check(False, "a deleted message batch is gone")
except anthropic.NotFoundError:
    check(True, "a deleted message batch is gone (404)")

# --- The usage ledger: the 1,000-request batch is booked under its models, priced.
usage = api("GET", "/v1/usage?group_by=model")
rows = {row["model"]: row for row in usage["data"]}
check(rows.get("gpt-4o-mini", {}).get("succeeded", 0) >= 800, "the usage ledger books the batch's gpt-4o-mini requests")
check(rows["gpt-4o-mini"]["input_tokens"] > 0 and rows["gpt-4o-mini"]["cost_usd"] > 0, "with their tokens and cost")

print("batches: all checks passed")
