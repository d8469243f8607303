#!/usr/bin/env python3
"""The live clients of bench/live.sh, in one process (asyncio, raw HTTP/1.1 over loopback: no
third-party package, so that the clients' own CPU on the shared cores stays small).

  --dashboards N   each logs in through /ui/login with the admin key, loads /ui/overview with its
                   stylesheet and script as a browser does, then reads /ui/overview.json every 2 s
                   (the page's refresh interval; the overview opens no event stream).
  --followers N    apps following their own jobs: each takes a queued job of the load (tenant
                   `bench`, ids from GET /v1/jobs?state=queued, one list call per 100 ids) and
                   reads GET /v1/jobs/{id}/events (Accept: text/event-stream) until `event: end`,
                   then takes the next. Checked: the status ids are 1, 2, 3, ... with no gap, and
                   every stream ends with `end`.
  --tenant-streams N  apps of N other tenants (one key each), each reading GET /v1/events of its
                   own tenant: the load's jobs are none of theirs (the hub looks tenants up and
                   filters; nothing is written to them but pings).
  --firehoses N    GET /v1/events of tenant `bench` (keys of `bench`, 16 streams a key): every
                   stream carries every job of the load (the worst case). Checked: event ids
                   strictly increase, and at the end each stream has seen every job succeed.

Prints `ready` once everything is open; on SIGTERM waits (up to 10 s) for the firehoses to have
seen --expect-jobs successes, then prints one `LIVE ...` line with the counts, the checks and
this process's CPU seconds, and exits (1 when a check failed).
"""
import argparse
import asyncio
import json
import re
import resource
import signal
import sys
import urllib.parse

args = None
host = port = None
stats = {
    "polls": 0, "poll_errors": 0, "follows": 0, "follow_gaps": 0, "follow_unended": 0,
    "tenant_events": 0, "fire_events": 0, "fire_bytes": 0, "fire_order_errors": 0,
}
fire_succeeded = []  # per firehose: job successes seen
errors = []


async def connect():
    return await asyncio.open_connection(host, port, limit=1 << 20)


def request_bytes(method, path, headers=None, body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip().lower(), value.strip()))
    return status, headers


async def chunks(reader):
    """The body's chunks of a chunked answer, as they come."""
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return
        data = await reader.readexactly(size + 2)
        yield data[:-2]


async def exchange(conn, method, path, headers=None, body=b""):
    """One request on a kept-alive connection: status, headers, whole body."""
    reader, writer = conn
    writer.write(request_bytes(method, path, headers, body))
    status, head = await read_head(reader)
    fields = dict(head)
    if fields.get("transfer-encoding", "").lower() == "chunked":
        data = b"".join([c async for c in chunks(reader)])
    else:
        data = await reader.readexactly(int(fields.get("content-length", "0")))
    return status, head, data


def cookie(head, prefix=None):
    for name, value in head:
        if name == "set-cookie" and (prefix is None or value.startswith(prefix)):
            return value.split(";")[0]
    raise RuntimeError("no cookie")


async def dashboard(n, admin, stop):
    conn = await connect()
    status, head, html = await exchange(conn, "GET", "/ui/login")
    token = re.search(rb'name="csrf" value="([^"]+)"', html).group(1).decode()
    form = urllib.parse.urlencode({"key": admin, "csrf": token}).encode()
    status, head, _ = await exchange(conn, "POST", "/ui/login", {
        "Cookie": cookie(head), "Content-Type": "application/x-www-form-urlencoded"}, form)
    session = {"Cookie": cookie(head, "sluice_session")}
    for path in ("/ui/overview", "/ui/static/dashboard.css", "/ui/static/dashboard.js"):
        status, _, _ = await exchange(conn, "GET", path, session)
        assert status == 200, (path, status)
    await asyncio.sleep(2 * n / max(1, args.dashboards))  # opened at different times
    while not stop.is_set():
        status, _, body = await exchange(conn, "GET", "/ui/overview.json", dict(session, Accept="application/json"))
        if status == 200 and body.startswith(b"{"):
            stats["polls"] += 1
        else:
            stats["poll_errors"] += 1
        try:
            await asyncio.wait_for(stop.wait(), 2)
        except asyncio.TimeoutError:
            pass
    conn[1].close()


async def open_stream(path, key):
    reader, writer = await connect()
    writer.write(request_bytes("GET", path, {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}))
    status, head = await read_head(reader)
    if status != 200:
        raise RuntimeError(f"{path}: {status}")
    return reader, writer


def blocks(buffer, data):
    """Appends `data` to `buffer`, returns the complete SSE events (without their blank line)."""
    buffer += data
    end = buffer.rfind(b"\n\n")
    if end < 0:
        return []
    whole = bytes(buffer[:end])
    del buffer[:end + 2]
    return whole.split(b"\n\n")


def position(event_id):
    tag, ms, seq = event_id.split(b"-")
    return int(ms), tag, int(seq)


async def firehose(n, key, opened):
    reader, writer = await open_stream("/v1/events", key)
    opened.set()
    buffer, last, succeeded = bytearray(), None, 0
    async for data in chunks(reader):
        stats["fire_bytes"] += len(data)
        for block in blocks(buffer, data):
            if not block.startswith(b"id: "):
                continue  # the opening, pings
            stats["fire_events"] += 1
            line_end = block.find(b"\n")
            here = position(block[4:line_end])
            if last is not None and not last < here:
                stats["fire_order_errors"] += 1
            last = here
            if block.endswith(b'"to":"succeeded"}'):
                succeeded += block.count(b'"job_')
        fire_succeeded[n] = succeeded


async def tenant_stream(key, opened):
    reader, writer = await open_stream("/v1/events", key)
    opened.set()
    buffer = bytearray()
    async for data in chunks(reader):
        for block in blocks(buffer, data):
            if block.startswith(b"id: "):
                stats["tenant_events"] += 1


class Pool:
    """Queued job ids of the load, listed 100 at a time (newest first)."""

    def __init__(self, key):
        self.key, self.ids, self.lock, self.conn = key, [], asyncio.Lock(), None

    async def take(self, stop):
        async with self.lock:
            while not self.ids and not stop.is_set():
                if self.conn is None:
                    self.conn = await connect()
                status, _, body = await exchange(self.conn, "GET", "/v1/jobs?state=queued&limit=100",
                                                 {"Authorization": f"Bearer {self.key}"})
                if status == 200:
                    self.ids = [job["id"] for job in json.loads(body)["data"]]
                if not self.ids:
                    await asyncio.sleep(0.1)  # nothing queued yet (or any more)
            return self.ids.pop() if self.ids else None


async def follower(key, pool, stop, opened):
    opened.set()
    while not stop.is_set():
        job = await pool.take(stop)
        if job is None:
            return
        reader, writer = await open_stream(f"/v1/jobs/{job}/events", key)
        buffer, expected, ended = bytearray(), 1, False
        async for data in chunks(reader):
            for block in blocks(buffer, data):
                if block.startswith(b"id: "):
                    if int(block[4:block.find(b"\n")]) != expected:
                        stats["follow_gaps"] += 1
                    expected += 1
                elif block.startswith(b"event: end"):
                    ended = True
        writer.close()
        stats["follows"] += 1
        if not ended:
            stats["follow_unended"] += 1


async def make_keys(admin, tenant, count):
    conn = await connect()
    keys = []
    for _ in range(count):
        body = json.dumps({"tenant": tenant() if callable(tenant) else tenant, "scopes": ["read"]}).encode()
        status, _, answer = await exchange(conn, "POST", "/v1/keys", {
            "Authorization": f"Bearer {admin}", "Content-Type": "application/json"}, body)
        assert status in (200, 201), (status, answer)
        keys.append(json.loads(answer)["key"])
    conn[1].close()
    return keys


async def main():
    global host, port
    split = urllib.parse.urlsplit(args.url)
    host, port = split.hostname, split.port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    terminated = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)
    tasks, opened = [], []

    def spawn(coroutine_factory):
        event = asyncio.Event()
        opened.append(event)
        tasks.append(asyncio.create_task(coroutine_factory(event)))

    print("creating keys", file=sys.stderr, flush=True)
    bench_keys = await make_keys(args.admin, "bench", (args.firehoses + args.followers + 15) // 16)
    fire_succeeded.extend([0] * args.firehoses)
    for n in range(args.firehoses):
        spawn(lambda e, n=n: firehose(n, bench_keys[n // 16], e))
    pool = Pool(args.key)
    for n in range(args.followers):
        spawn(lambda e, n=n: follower(bench_keys[(args.firehoses + n) // 16], pool, stop, e))
    counter = iter(range(1_000_000))
    tenant_keys = await make_keys(args.admin, lambda: f"app{next(counter)}", args.tenant_streams)
    for key in tenant_keys:
        spawn(lambda e, key=key: tenant_stream(key, e))
    for n in range(args.dashboards):
        tasks.append(asyncio.create_task(dashboard(n, args.admin, stop)))
    print("opening the streams", file=sys.stderr, flush=True)
    await asyncio.gather(*(event.wait() for event in opened))
    await asyncio.sleep(2.5 if args.dashboards else 0)  # every dashboard logged in and polling
    failed = [task for task in tasks if task.done() and task.exception()]
    if failed:
        raise failed[0].exception()
    print("ready", flush=True)
    await terminated.wait()
    stop.set()
    # The last events reach the firehoses a read or two after the last job succeeded.
    for _ in range(100):
        if all(count >= args.expect_jobs for count in fire_succeeded):
            break
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    incomplete = sum(1 for count in fire_succeeded if count < args.expect_jobs)
    ok = not crashed and incomplete == 0 and stats["fire_order_errors"] == 0 and stats["follow_gaps"] == 0 \
        and stats["follow_unended"] == 0 and stats["poll_errors"] == 0
    fields = " ".join(f"{name}={value}" for name, value in stats.items())
    print(f"LIVE {fields} fire_incomplete={incomplete} fire_min_succeeded={min(fire_succeeded, default=0)} "
          f"crashed={len(crashed)} cpu_s={usage.ru_utime + usage.ru_stime:.1f} checks={'ok' if ok else 'FAILED'}", flush=True)
    for error in crashed[:3]:
        print(f"client error: {error!r}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--admin", required=True, help="the admin key (dashboards, keys)")
    parser.add_argument("--key", required=True, help="a key of tenant bench with read (the followers' job list)")
    parser.add_argument("--dashboards", type=int, default=0)
    parser.add_argument("--followers", type=int, default=0)
    parser.add_argument("--tenant-streams", type=int, default=0)
    parser.add_argument("--firehoses", type=int, default=0)
    parser.add_argument("--expect-jobs", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(main())
