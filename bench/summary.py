"""The one table at the end of `make bench`: every figure from the RESULT lines that the bench scripts
of this run appended to one file (BENCH_RESULTS). Usage: python3 bench/summary.py FILE"""
import os, sys

SIDEKIQ_PUBLISHED = 23_500  # Sidekiq 7, no-op jobs, concurrency 30: its README's figure, not measured here


def load(path):
    runs = {}
    for line in open(path):
        if not line.startswith("RESULT "):
            continue
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        key = fields.get("bench", "?")
        if "label" in fields:
            key += ":" + fields["label"]
        runs[key] = fields
    return runs


def num(fields, name):
    try:
        return float(fields[name])
    except (KeyError, TypeError, ValueError):
        return None


def main(path):
    runs = load(path)
    rows = []

    def row(measure, figure, note=""):
        rows.append((measure, figure, note))

    workers = runs.get("workers", {})
    e2e, arq = num(workers, "e2e_jobs_per_s"), num(workers, "arq_jobs_per_s")
    if e2e:
        note = f"arq {arq:,.0f} jobs/s in this run: {e2e / arq:.1f}×" if arq else "arq not measured"
        note += f"; Sidekiq 7 published (no-op jobs, not measured): {SIDEKIQ_PUBLISHED:,}, {e2e / SIDEKIQ_PUBLISHED:.2f}×"
        row("end to end: submit → provider call (nginx) → result", f"{e2e:,.0f} jobs/s", note)
        if num(workers, "archive_jobs_per_s"):
            row("  … and archived to SQLite", f"{num(workers, 'archive_jobs_per_s'):,.0f} jobs/s", "until the last job was archived")
    if num(workers, "redis_cpu_us_per_job") is not None:
        row("Redis CPU per job (e2e run)", f"{num(workers, 'redis_cpu_us_per_job'):.1f} µs",
            "redis-server utime+stime over the run / jobs (submit, lease, complete, archive reads)")
    memory = runs.get("memory", {})
    if memory:
        row("RSS of one worker, calls in flight", f"{num(memory, 'rss_mb'):.0f} MB",
            f"{num(memory, 'in_flight'):,.0f} calls in flight (mock provider at 2 s); goal: 10,000 under 200 MB")

    rates = sorted({int(k.rsplit("-", 1)[1]) for k in runs if k.startswith("facade:direct-")})
    for rate in rates:
        direct, facade, litellm = (runs.get(f"facade:{name}-{rate}") for name in ("direct", "facade", "litellm"))
        def triple(run):
            return tuple(num(run, k) for k in ("p50_ms", "p99_ms", "p999_ms"))
        def reached(run):
            failed = num(run, "unfinished") + num(run, "errors") + num(run, "non2xx")
            text = f"; reached {num(run, 'achieved'):,.0f}/s" if num(run, "achieved") < 0.95 * rate else ""
            return text + (f"; {failed:,.0f} unanswered or failed" if failed else "")
        d = triple(direct)
        if facade:
            f = triple(facade)
            row(f"facade overhead at {rate:,}/s, p50 / p99 / p99.9",
                " / ".join(f"{a - b:+.2f}" for a, b in zip(f, d)) + " ms",
                f"facade {f[0]:.2f} / {f[1]:.2f} / {f[2]:.2f}, nginx direct {d[0]:.2f} / {d[1]:.2f} / {d[2]:.2f} ms{reached(facade)}")
        if litellm and num(litellm, "ok"):
            l = triple(litellm)
            row(f"LiteLLM overhead at {rate:,}/s, p50 / p99 / p99.9", " / ".join(f"{a - b:+.2f}" for a, b in zip(l, d)) + " ms",
                f"LiteLLM proxy, 2 workers{reached(litellm)}")
        elif litellm:
            row(f"LiteLLM at {rate:,}/s", "no answer", reached(litellm).lstrip("; "))
    if rates:
        row("  (facade goal, issue 13)", "p50 ≤ 1 ms, p99 ≤ 3 ms", "overhead at 2,000/s, open-loop, latency from the scheduled send")

    submit = runs.get("submit", {})
    if num(submit, "rps"):
        note = f"wrk -c64, p50 {num(submit, 'p50_ms'):.1f} ms, p99 {num(submit, 'p99_ms'):.1f} ms, codes {submit.get('codes', '?')}"
        if num(submit, "nginx_rps"):
            note += f"; {num(submit, 'rps') / num(submit, 'nginx_rps'):.2f}× nginx's {num(submit, 'nginx_rps'):,.0f} req/s"
        row("submit, POST /v1/jobs", f"{num(submit, 'rps'):,.0f} jobs/s", note)
    http = runs.get("http", {})
    if num(http, "bulk_jobs_per_s"):
        row("bulk JSONL ingestion over HTTP", f"{num(http, 'bulk_jobs_per_s'):,.0f} jobs/s", "10,000 lines a request")
        row("long-poll wake-up, complete → answer", f"p50 {num(http, 'wake_p50_ms'):.2f} ms, p99 {num(http, 'wake_p99_ms'):.2f} ms", "")
    queue = runs.get("queue", {})
    if num(queue, "bulk_jobs_per_s"):
        lpush = num(queue, "lpush_ops_per_s")
        row("bulk enqueue (queue alone)", f"{num(queue, 'bulk_jobs_per_s'):,.0f} jobs/s",
            f"{num(queue, 'bulk_jobs_per_s') / lpush:.2f}× redis-benchmark LPUSH ({lpush:,.0f} ops/s)" if lpush else "")
        row("lifecycle enqueue → lease → complete", f"{num(queue, 'lifecycle_jobs_per_s'):,.0f} jobs/s", "the queue alone, 128 worker tasks")
        row("one job at a time, enqueue → completed", f"p50 {num(queue, 'idle_p50_ms'):.2f} ms, p99 {num(queue, 'idle_p99_ms'):.2f} ms", "")

    if not rows:
        print(f"no RESULT lines in {path}")
        return 1
    width = max(len(r[0]) for r in rows)
    fig = max(len(r[1]) for r in rows)
    print()
    print(f"== make bench: all measured in this run, {os.cpu_count()} cores shared by everything ==")
    for measure, figure, note in rows:
        print(f"{measure:<{width}}  {figure:>{fig}}  {note}")
    return 0


sys.exit(main(sys.argv[1]))
