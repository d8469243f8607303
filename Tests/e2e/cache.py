"""The response cache on the synchronous facade, driven by the official OpenAI SDK, and the dollars
the usage ledger says it saved.

Usage: cache.py BASE_URL API_KEY MOCK_URL   (run by Tests/sluiceTests/CacheSDKTests.swift against `sluice up`)

The config it expects: route `cached` (one target, mock/gpt-4o-mini, `cache: {ttl: 1h}`) and
gpt-4o-mini priced at $0.15 / $0.60 per million input / output tokens. Ten identical calls reach the mock once; the ledger books one call and
nine saved; a call with `X-Sluice-Cache: false` reaches the mock. Prints the measured figures.
Exits non-zero, naming the check, at the first failure.
"""
import json
import sys
import urllib.request

import openai

from e2e_support import check, eventually, request

base, key, mock = sys.argv[1], sys.argv[2], sys.argv[3]
oa = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)


def received():
    with urllib.request.urlopen(mock + "/stats") as response:
        return json.loads(response.read())["received"]


def ask(**extra):
    return oa.chat.completions.with_raw_response.create(
        model="cached", temperature=0, max_tokens=8,
        messages=[{"role": "user", "content": "What is the capital of France? Answer in one word."}], **extra)


before = received()
first = ask()
check(received() == before + 1, "the first call reaches the provider")
answers = [first] + [ask() for _ in range(9)]
check(received() == before + 1, "nine identical calls after it do not reach the provider")
texts = {raw.parse().choices[0].message.content for raw in answers}
check(len(texts) == 1, "all ten got the same answer")
jobs = {raw.headers.get("x-sluice-job") for raw in answers}
check(len(jobs) == 10, "each call is its own job (X-Sluice-Job)")
usage = first.parse().usage
check(usage.prompt_tokens > 0 and answers[-1].parse().usage.prompt_tokens == usage.prompt_tokens,
      "a cached answer carries the usage of the call it came from")

busted = ask(extra_headers={"X-Sluice-Cache": "false"})
check(busted.parse().choices[0].message.content in texts, "a call with X-Sluice-Cache: false answers")
check(received() == before + 2, "X-Sluice-Cache: false reaches the provider")


def ledger():
    status, body = request(base, key, "GET", "/v1/usage?group_by=model")
    return json.loads(body)["total"] if status == 200 else {}


check(eventually(lambda: ledger().get("requests", 0) >= 11, timeout=30), "the archiver books the eleven calls")
total = ledger()
check(total["cached"] == 9, "the ledger counts nine answered from the cache")
# The config's price of gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output.
per_call = (usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.6) / 1_000_000
# The API rounds dollars to the micro-dollar: within half of one.
check(abs(total["cost_usd"] - 2 * per_call) <= 5.1e-7, "the two calls made are booked at the list price")
check(abs(total["saved_usd"] - 9 * per_call) <= 5.1e-7, "saved_usd is nine calls at the list price")
print(f"measured: 11 calls, {received() - before} reached the provider, {total['cached']} from the cache; "
      f"{usage.prompt_tokens}+{usage.completion_tokens} tokens a call; cost_usd {total['cost_usd']}, saved_usd {total['saved_usd']}")
print("cache: all checks passed")
