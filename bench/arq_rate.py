"""arq at constant offered loads (bench/throughput.sh): for each rate, enqueue open-loop (job i is
due at t0 + i/rate; the enqueuer catches up when late) for SECONDS, wait until the queue is empty
(at most DRAIN seconds), then read every job's own enqueue and finish times from its stored result.
The worker is ../shared/peers/arq_tasks.py (POST to the fake provider), run as `peers arq` runs it.
Usage: python arq_rate.py SECONDS DRAIN RATE...   (REDIS_PORT, PROVIDER_URL as for arq_tasks.py)
Prints one line per rate:
RESULT system=arq offered=R submitted_per_s=... completed=N completed_per_s=... p50_ms=... p99_ms=..."""
import asyncio, os, signal, subprocess, sys, time
from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import default_queue_name, health_check_key_suffix
from arq.jobs import Job

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers")
RS = RedisSettings(host="127.0.0.1", port=int(os.environ.get("REDIS_PORT", "16379")))


def percentile(values, p):
    return values[min(len(values) - 1, max(0, int(p * len(values) + 0.999999) - 1))] if values else float("nan")


async def step(redis, rate, seconds, drain):
    total = int(rate * seconds)
    ids, pending = [], set()
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - t0) * rate) + 1)
        while sent < due:
            task = asyncio.ensure_future(redis.enqueue_job("call_provider", sent))
            pending.add(task)
            task.add_done_callback(pending.discard)
            ids.append(task)
            sent += 1
        if len(pending) > 2000:  # the enqueuer itself is saturated: let it catch up
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.sleep(max(0, t0 + sent / rate - time.perf_counter()))
    jobs = [job for job in await asyncio.gather(*ids) if job is not None]
    submitted_per_s = len(jobs) / (time.perf_counter() - t0)
    deadline = time.perf_counter() + drain
    while time.perf_counter() < deadline and await redis.zcard(default_queue_name):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the last jobs' results are stored just after they leave the queue
    latencies, first, last = [], None, None
    for start in range(0, len(jobs), 500):
        infos = await asyncio.gather(*(Job(job.job_id, redis).result_info() for job in jobs[start:start + 500]))
        for info in infos:
            if info is None or not info.success:
                continue
            enq, fin = info.enqueue_time.timestamp(), info.finish_time.timestamp()
            latencies.append((fin - enq) * 1000)
            first = enq if first is None else min(first, enq)
            last = fin if last is None else max(last, fin)
    latencies.sort()
    completed_per_s = len(latencies) / (last - first) if latencies and last > first else 0
    print(f"RESULT system=arq offered={rate} submitted_per_s={submitted_per_s:.1f} completed={len(latencies)} "
          f"of={len(jobs)} completed_per_s={completed_per_s:.1f} p50_ms={percentile(latencies, 0.5):.1f} "
          f"p99_ms={percentile(latencies, 0.99):.1f}", flush=True)
    await redis.flushdb()


async def main(seconds, drain, rates):
    redis = await create_pool(RS)
    await redis.flushdb()
    worker = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "arq"), "arq_tasks.WorkerSettings"],
                              cwd=PEERS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(400):
            if await redis.exists(default_queue_name + health_check_key_suffix):
                break
            await asyncio.sleep(0.05)
        for rate in rates:
            await step(redis, rate, seconds, drain)
    finally:
        os.kill(worker.pid, signal.SIGTERM)
        worker.wait(30)
        await redis.flushdb()
        await redis.aclose()

asyncio.run(main(float(sys.argv[1]), float(sys.argv[2]), [int(r) for r in sys.argv[3:]]))
