"""`make screenshots`: the dashboard's pages, photographed by headless Chromium against a demo.

Usage: browser_screenshots.py SLUICE_BINARY OUTPUT_FOLDER

Starts `sluice up` in a temporary folder (its own redis-server, and the mock provider on a free
port), feeds it bulks for about 40 seconds so that the overview's charts have something to show,
and writes login.png, overview.png, jobs.png, job.png, providers.png, scaling.png, usage.png,
keys.png, batches.png and dead.png.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from browser_support import Browser
from e2e_support import request

binary, output = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
os.makedirs(output, exist_ok=True)
work = tempfile.mkdtemp(prefix="sluice-screenshots-")

with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    mock_port = probe.getsockname()[1]
with open(os.path.join(work, "sluice.yaml"), "w") as config:
    config.write(f"""server: {{ port: 0 }}
database: {work}/sluice.sqlite
mock_provider: {{ port: {mock_port} }}
providers:
  demo: {{ kind: openai, base_url: "http://127.0.0.1:{mock_port}/v1", models: [gpt-4o-mini], limits: {{ rpm: 900, concurrency: 8 }} }}
  demo-claude: {{ kind: anthropic, base_url: "http://127.0.0.1:{mock_port}", models: [claude-3-5-haiku], limits: {{ rpm: 300, concurrency: 4 }} }}
  held: {{ kind: external }}
prices:
  gpt-4o-mini: {{ input: 0.15, output: 0.60 }}
  claude-3-5-haiku: {{ input: 0.80, output: 4.00 }}
""")

log_path = os.path.join(work, "up.log")
log = open(log_path, "w")
up = subprocess.Popen([binary, "up", "--config", os.path.join(work, "sluice.yaml"), "--data-directory", os.path.join(work, "redis")],
                      stdout=log, stderr=subprocess.STDOUT)
try:
    end = time.time() + 60
    while "sluice: ready" not in open(log_path).read():
        if time.time() > end or up.poll() is not None:
            raise SystemExit("sluice up did not start:\n" + open(log_path).read())
        time.sleep(0.2)
    text = open(log_path).read()
    admin = re.search(r"^\s*(sluice_[a-z0-9]{8}_[A-Za-z0-9_-]{43})\s*$", text, re.M).group(1)
    port = re.search(r"HTTP API on http://127\.0\.0\.1:(\d+)", text).group(1)
    base = f"http://127.0.0.1:{port}"

    def bulk(lane, model, count, tenant_key=admin):
        jobs = [{"lane": lane, "request": {"model": model, "messages": [{"role": "user", "content": f"Summarise ticket {n}"}]}}
                for n in range(count)]
        status, body = request(base, tenant_key, "POST", "/v1/jobs/bulk", jobs)
        assert status == 202, (status, body)
        return [entry["id"] for entry in json.loads(body)["data"]]

    # An OpenAI batch through the official SDK, for the batches page.
    import io
    import openai
    oa = openai.OpenAI(base_url=base + "/v1", api_key=admin, max_retries=0, timeout=60)
    lines = "".join(json.dumps({"custom_id": f"r{n}", "method": "POST", "url": "/v1/chat/completions",
                                "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"batch {n}"}]}}) + "\n"
                    for n in range(200))
    uploaded = oa.files.create(file=("batch.jsonl", io.BytesIO(lines.encode())), purpose="batch")
    oa.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")

    with Browser(width=1440, height=900) as browser:
        browser.goto(base + "/ui/login")
        browser.screenshot(os.path.join(output, "login.png"))
        browser.evaluate(f"document.getElementById('key').value = {json.dumps(admin)}")
        browser.submit("#login")
        first = []
        for round in range(8):
            first += bulk("demo/gpt-4o-mini", "gpt-4o-mini", 60 + 30 * (round % 3))
            bulk("demo-claude/claude-3-5-haiku", "claude-3-5-haiku", 20)
            if round == 0:
                bulk("held", "local", 12)
            time.sleep(5)
        time.sleep(2.5)  # one more refresh of the overview
        browser.screenshot(os.path.join(output, "overview.png"))
        browser.goto(base + "/ui/jobs?lane=demo/gpt-4o-mini")
        browser.screenshot(os.path.join(output, "jobs.png"))
        browser.goto(f"{base}/ui/jobs/{first[0]}")
        browser.screenshot(os.path.join(output, "job.png"))
        for page in ["providers", "scaling", "usage", "keys", "batches", "dead"]:
            browser.goto(f"{base}/ui/{page}")
            browser.screenshot(os.path.join(output, f"{page}.png"))
    print("screenshots:", ", ".join(sorted(name for name in os.listdir(output) if name.endswith(".png"))), "in", output)
finally:
    up.send_signal(signal.SIGTERM)
    try:
        up.wait(timeout=20)
    except subprocess.TimeoutExpired:
        up.kill()
    log.close()
    subprocess.run(["rm", "-rf", work])
