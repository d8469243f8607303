"""The mock provider's batch APIs, driven by the official SDKs against it: OpenAI's files.create,
batches.create, batches.retrieve until completed and files.content, and Anthropic's
messages.batches.create, retrieve until ended, and results; both lists (newest first, paged as the
SDKs page); then the mock's /stats.

Usage: mock_batches.py MOCK_BASE_URL   (run by Tests/SluiceMockTests/MockBatchTests.swift against a
mock with a short --batch-delay, --error-rate 0.2 and --batch-expire-rate 0.2). Exits non-zero,
naming the check, at the first failure.
"""
import io
import json
import sys
import time
import urllib.request

import anthropic
import openai

from e2e_support import check

base = sys.argv[1]
oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-mock", max_retries=0, timeout=30)
an = anthropic.Anthropic(base_url=base, api_key="sk-ant-mock", max_retries=0, timeout=30)


def wait_for(fetch, done, timeout=30):
    end = time.time() + timeout
    while True:
        value = fetch()
        if done(value) or time.time() > end:
            return value
        time.sleep(0.1)


# OpenAI: 200 chat requests in one file.
lines = [json.dumps({"custom_id": f"job_{i}", "method": "POST", "url": "/v1/chat/completions",
                     "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {i}"}], "max_tokens": 8}})
         for i in range(200)]
uploaded = oa.files.create(file=("input.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch")
check(uploaded.id.startswith("file-") and uploaded.purpose == "batch" and uploaded.bytes > 0, f"files.create: {uploaded.id}")
batch = oa.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "e2e"})
check(batch.status in ("validating", "in_progress"), f"batches.create: {batch.status}")
seen = set()
batch = wait_for(lambda: oa.batches.retrieve(batch.id), lambda b: (seen.add(b.status), b.status)[1] in ("completed", "failed"))
check(batch.status == "completed", f"batches.retrieve reaches completed (saw {sorted(seen)})")
check("in_progress" in seen, "the batch was in progress before it completed")
counts = batch.request_counts
check(counts.total == 200 and counts.completed + counts.failed == 200, f"request_counts {counts}")
check(0 < counts.failed < 200, f"--error-rate and --batch-expire-rate fail some lines: {counts.failed}")
check(batch.metadata == {"run": "e2e"}, "metadata comes back")
output = [json.loads(line) for line in oa.files.content(batch.output_file_id).text.splitlines()]
errors = [json.loads(line) for line in oa.files.content(batch.error_file_id).text.splitlines()]
check(len(output) == counts.completed and len(errors) == counts.failed, "the output and error files hold every line")
check(all(line["response"]["status_code"] == 200 and line["response"]["body"]["object"] == "chat.completion" for line in output),
      "output lines are chat completions")
check(all((line["response"] or {}).get("status_code") == 500 or line["error"]["code"] == "batch_expired" for line in errors),
      "error lines are 500s or expired")
check(sorted(line["custom_id"] for line in output + errors) == sorted(f"job_{i}" for i in range(200)), "each custom_id once")

# A bad line: the batch fails validation, naming the line.
bad = oa.files.create(file=("bad.jsonl", io.BytesIO((lines[0] + "\n{not json\n").encode())), purpose="batch")
failed = oa.batches.create(input_file_id=bad.id, endpoint="/v1/chat/completions", completion_window="24h")
failed = wait_for(lambda: oa.batches.retrieve(failed.id), lambda b: b.status == "failed")
check(failed.status == "failed" and failed.errors.data[0].code == "invalid_json_line" and failed.errors.data[0].line == 2,
      f"a bad JSONL line fails the batch: {failed.errors}")
try:
    oa.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="1h")
    check(False, "completion_window 1h is refused")
except openai.BadRequestError as error:
    check(error.body["param"] == "completion_window", "completion_window 1h is refused")

# Anthropic: 150 requests.
requests = [{"custom_id": f"job_a{i}", "params": {"model": "claude-3-5-haiku", "max_tokens": 8,
                                                    "messages": [{"role": "user", "content": f"hi {i}"}]}} for i in range(150)]
created = an.messages.batches.create(requests=requests)
check(created.processing_status == "in_progress" and created.request_counts.processing == 150, "messages.batches.create")
ended = wait_for(lambda: an.messages.batches.retrieve(created.id), lambda b: b.processing_status == "ended")
check(ended.processing_status == "ended" and ended.results_url, f"messages.batches.retrieve reaches ended: {ended.results_url}")
c = ended.request_counts
check(c.succeeded + c.errored + c.expired == 150 and c.processing == 0 and c.canceled == 0, f"request_counts {c}")
check(c.errored > 0 and c.expired > 0 and c.succeeded > 0, "some lines errored, some expired")
results = list(an.messages.batches.results(created.id))
check(sorted(r.custom_id for r in results) == sorted(f"job_a{i}" for i in range(150)), "results: each custom_id once")
kinds = {r.result.type for r in results}
check(kinds == {"succeeded", "errored", "expired"}, f"result types {kinds}")
check(all(r.result.message.type == "message" and r.result.message.usage.input_tokens > 0 for r in results if r.result.type == "succeeded"),
      "succeeded results are messages with usage")
check(all(r.result.error.error.type == "api_error" for r in results if r.result.type == "errored"), "errored results carry an api_error")
try:
    an.messages.batches.create(requests=[{"custom_id": "bad id!", "params": {"model": "m", "max_tokens": 1, "messages": []}}])
    check(False, "a bad custom_id is refused")
except anthropic.BadRequestError as error:
    check(error.body["error"]["type"] == "invalid_request_error", "a bad custom_id is refused")

# Cancelling.
cancel = an.messages.batches.create(requests=requests[:10])
cancel = an.messages.batches.cancel(cancel.id)
check(cancel.processing_status == "canceling", "cancel answers canceling")
cancel = an.messages.batches.retrieve(cancel.id)
check(cancel.processing_status == "ended" and cancel.request_counts.canceled > 0, f"then ended, with canceled lines: {cancel.request_counts}")

# Listing, newest first, a page at a time, as the SDKs page: OpenAI's two batches (the failed one
# newest), Anthropic's two.
page = oa.batches.list(limit=1)
check([b.id for b in page.data] == [failed.id] and page.has_more, f"batches.list(limit=1): {[b.id for b in page.data]}")
listed = list(oa.batches.list(limit=1))
check([b.id for b in listed] == [failed.id, batch.id], "batches.list pages through with after")
check(listed[1].metadata == {"run": "e2e"} and listed[1].status == "completed", "a listed batch is the whole object")
listed = an.messages.batches.list(limit=1)
check([b.id for b in listed.data] == [cancel.id] and listed.has_more and listed.last_id == cancel.id, f"messages.batches.list: {listed}")
check([b.id for b in an.messages.batches.list(limit=1)] == [cancel.id, created.id], "messages.batches.list pages through with after_id")
check([b.id for b in an.messages.batches.list(before_id=created.id).data] == [cancel.id], "before_id: the newer ones")

stats = json.loads(urllib.request.urlopen(base + "/stats").read())
check(stats["batch_lines"] == 200 + 150 + 10 and stats["batches"] == 3 and stats["batch_duplicate_ids"] == 10, f"/stats counts batch lines: {stats}")
print("all ok")
