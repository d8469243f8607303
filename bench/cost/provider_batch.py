"""A client batch of N support tickets through Sluice's OpenAI Batch API (the official SDK), which
Sluice sends on as one provider batch (batch_api); prints the batch, the ledger's total and the
mock's /stats. Run by bench/cost.sh: provider_batch.py URL MOCK_URL KEY N."""
import json, time, sys, urllib.request, random
from openai import OpenAI
url, mock, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = OpenAI(base_url=url + "/v1", api_key=key)
random.seed(7)
words = "the customer reports that the invoice shows a duplicate charge for the annual plan and asks for a refund before the renewal date".split()
lines = []
for i in range(n):
    ticket = " ".join(random.choice(words) for _ in range(300))
    lines.append(json.dumps({"custom_id": f"ticket-{i}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-4o-mini", "max_tokens": 200, "messages": [
            {"role": "system", "content": "Summarise the support ticket in one sentence."},
            {"role": "user", "content": ticket}]}}))
open("tickets.jsonl", "w").write("\n".join(lines) + "\n")
started = time.time()
f = client.files.create(file=open("tickets.jsonl", "rb"), purpose="batch")
b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
while b.status not in ("completed", "failed", "expired", "cancelled"):
    time.sleep(1); b = client.batches.retrieve(b.id)
print("batch", b.id, b.status, b.request_counts, "in %.1f s" % (time.time() - started))
out = client.files.content(b.output_file_id).text.strip().splitlines()
print("output lines", len(out), "first:", out[0][:160])
def get(url, k):
    return json.loads(urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + k})).read())
print("usage", json.dumps(get(url + "/v1/usage", key)["total"]))
print("mock", json.dumps(get(mock + "/stats", key)))
