"""The synchronous facade, driven by the official SDKs, unchanged but for their base URL.

Usage: facade.py BASE_URL API_KEY   (run by Tests/sluiceTests/SDKTests.swift against `sluice up`)

The config it expects: route `smart` = [mock/gpt-4o-mini, mock-claude/claude-3-5-haiku] (an
OpenAI-compatible mock, and the same mock as Anthropic), and a provider `nowhere` that nothing
answers. Exits non-zero, naming the check, at the first failure.
"""
import json
import sys
import urllib.request

import anthropic
import openai

from e2e_support import check

base, key = sys.argv[1], sys.argv[2]
oa = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)


# OpenAI chat through a route, and through provider/model.
chat = oa.chat.completions.create(model="smart", messages=[{"role": "user", "content": "Say hi"}], max_tokens=8)
check(chat.choices[0].message.content == "Hello from the mock provider.", "chat via a route answers")
check(chat.model == "gpt-4o-mini", "the provider got the route's lane model")
check(chat.usage.completion_tokens > 0, "usage comes back")
raw = oa.chat.completions.with_raw_response.create(model="mock/gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
check(raw.headers.get("x-sluice-job", "").startswith("job_"), "the answer names its job (X-Sluice-Job)")
check(raw.parse().choices[0].finish_reason == "stop", "chat via provider/model answers")

# Embeddings go to the embeddings endpoint.
embedding = oa.embeddings.create(model="mock/text-embedding-3-small", input="hello")
check(len(embedding.data[0].embedding) > 0, "embeddings answer with a vector")

# Anthropic messages, to an Anthropic lane and, translated, to an OpenAI lane.
message = an.messages.create(model="mock-claude/claude-3-5-haiku", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
check(message.content[0].text == "Hello from the mock provider.", "messages to an Anthropic lane")
check(message.usage.output_tokens > 0, "messages usage")
crossed = an.messages.create(model="smart", max_tokens=16, system="Be brief.", messages=[{"role": "user", "content": "hi"}])
check(crossed.type == "message" and crossed.content[0].text == "Hello from the mock provider.",
      "messages through a route whose lane speaks OpenAI: translated there and back")
check(crossed.stop_reason == "end_turn", "the finish reason is translated")

# Refusals: stream, unknown model, a bad wait.
try:
    oa.chat.completions.create(model="smart", messages=[{"role": "user", "content": "x"}], stream=True)
    check(False, "stream: true is refused")
except openai.BadRequestError as error:
    check("stream" in str(error), "stream: true is refused with a 400 that says why")
try:
    oa.chat.completions.create(model="gpt-5-turbo", messages=[{"role": "user", "content": "x"}])
    check(False, "an unknown model is refused")
except openai.NotFoundError as error:
    check("gpt-5-turbo" in str(error), "an unknown model is a 404 naming it")
try:
    oa.chat.completions.create(model="smart", messages=[], extra_headers={"X-Sluice-Wait": "100000"})
    check(False, "an over-long wait is refused")
except openai.BadRequestError as error:
    check("X-Sluice-Wait" in str(error), "an over-long X-Sluice-Wait is a 400")

# A provider that never answers: the wait ends with 504, naming the job to poll later.
try:
    oa.chat.completions.create(model="nowhere/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                               extra_headers={"X-Sluice-Wait": "1"})
    check(False, "the wait is bounded")
except openai.APIStatusError as error:
    check(error.status_code == 504, "the bounded wait ends with 504")
    job = error.body.get("job_id") if isinstance(error.body, dict) else None
    check(job is not None and job.startswith("job_"), "the 504 names the job")
    request = urllib.request.Request(f"{base}/v1/jobs/{job}", headers={"Authorization": f"Bearer {key}"})
    polled = json.load(urllib.request.urlopen(request))
    check(polled["id"] == job and polled["status"] in ("queued", "leased", "retry_wait"), "the job can be polled")

# The same Idempotency-Key waits on the same job.
first = oa.chat.completions.with_raw_response.create(model="mock/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                                      extra_headers={"Idempotency-Key": "facade-once"})
again = oa.chat.completions.with_raw_response.create(model="mock/gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
                                                      extra_headers={"Idempotency-Key": "facade-once"})
check(first.headers["x-sluice-job"] == again.headers["x-sluice-job"], "a retry with the same Idempotency-Key is the same job")

print("facade: all checks passed")
