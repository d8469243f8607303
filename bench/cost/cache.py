"""1,000 jobs with "cache": {"ttl": "1h"}, 32 submitting at once, 100 distinct requests at
temperature 0; prints their states, the provider calls the mock saw and the ledger's total. Run by
bench/cost.sh: cache.py URL MOCK_URL KEY."""
import json, time, sys, urllib.request, random
from concurrent.futures import ThreadPoolExecutor
url, mock, key = sys.argv[1], sys.argv[2], sys.argv[3]
def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())
before = call("GET", mock + "/stats")["received"]
random.seed(3)
questions = [f"Classify the sentiment of review #{i}: " + " ".join(random.choice(["great","slow","broken","love","refund","fast"]) for _ in range(60)) for i in range(100)]
def submit(i):
    q = questions[(i * 37) % 100]
    return call("POST", url + "/v1/jobs", {"model": "demo/gpt-4o-mini", "cache": {"ttl": "1h"},
        "request": {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 5, "messages": [{"role": "user", "content": q}]}})["id"]
started = time.time()
with ThreadPoolExecutor(32) as pool: ids = list(pool.map(submit, range(1000)))
states = {}
for jid in ids:
    j = call("GET", f"{url}/v1/jobs/{jid}?wait=60")
    states[j["status"]] = states.get(j["status"], 0) + 1
print("jobs", states, "in %.1f s" % (time.time() - started))
print("provider calls", call("GET", mock + "/stats")["received"] - before)
time.sleep(3)
print("usage", json.dumps(call("GET", url + "/v1/usage")["total"]))
