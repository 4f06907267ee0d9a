"""Drives a running local stack for tools/soak.sh: form submissions and chats
until a count or a time is reached, and every interval a line of what the
stack looks like: /healthz latency, the emulator's and the host's resident
memory, what the emulator dropped. Standard library only.

usage: soak.py HOST_URL EMULATOR_URL HOST_PID SUBMISSIONS SECONDS INTERVAL
"""

import collections
import json
import sys
import threading
import time
import urllib.error
import urllib.request

TENANT = "ri3a9f2c7d41be"
SUBMITTERS = 4
CHATTERS = 1
SETTLE_SECONDS = 30


def request(url, body=None, timeout=60):
    """(status, text) of a GET, or a POST of JSON; status 0 when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as error:
        return 0, str(error)


def submission(n):
    return {
        "tenant_hash": TENANT, "form_mode": True, "action": "submit_form", "form_id": "reading_buddy_application",
        "client_submission_id": f"soak-{time.time_ns()}-{n}",
        "form_data": {
            "age_18_plus": "yes", "first_name": "Ana", "last_name": f"Soak{n}", "email": f"soak{n}@example.org",
            "phone": "+1 (503) 555-0199", "zip_code": "97412", "availability": "Weekday afternoons",
            "why_reading_buddies": "I loved reading with my grandmother and want to pass that on to kids.",
        },
    }


def outcome(status, text):
    """'ok', or the error code (or HTTP status) a request ended with."""
    if status == 200 and ('"form_complete"' in text or "[DONE]" in text) and '"type":"error"' not in text:
        return "ok"
    for line in text.splitlines():
        if line.startswith("data: {"):
            frame = json.loads(line[6:])
            if frame.get("code"):
                return frame["code"]
    return f"http_{status}"


def resident_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None


def main(host, emulator, host_pid, submissions, seconds, interval):
    started = time.monotonic()
    deadline = started + seconds
    counts = {"submit": collections.Counter(), "chat": collections.Counter()}
    lock = threading.Lock()
    next_n = iter(range(submissions))
    done = threading.Event()

    def record(kind, result):
        with lock:
            counts[kind][result] += 1

    def submitter():
        while not done.is_set() and time.monotonic() < deadline:
            with lock:
                n = next(next_n, None)
            if n is None:
                return
            record("submit", outcome(*request(f"{host}/forms", submission(n))))

    def chatter():
        n = 0
        while not done.is_set() and time.monotonic() < deadline:
            n += 1
            chat = {"tenant_hash": TENANT, "user_input": "How do I become a reading buddy?", "session_id": f"soak{n}"}
            record("chat", outcome(*request(f"{host}/chat", chat)))

    workers = [threading.Thread(target=submitter) for _ in range(SUBMITTERS)]
    chatters = [threading.Thread(target=chatter) for _ in range(CHATTERS)]
    for worker in workers + chatters:
        worker.start()

    worst = {"healthz_ms": 0.0, "emulator_kib": 0, "host_kib": 0}
    print("elapsed_s submits(ok/other) chats(ok/other) healthz_ms(max of 5) healthz_503s emulator_rss_mib "
          "host_rss_mib dropped", flush=True)

    def healthz_ms(samples):
        """The latencies of `samples` calls to /healthz, and how many were not 200."""
        latencies, degraded = [], 0
        for _ in range(samples):
            begun = time.monotonic()
            status, _ = request(f"{host}/healthz", timeout=10)
            latencies.append((time.monotonic() - begun) * 1000)
            degraded += status != 200
        return sorted(latencies), degraded

    def report():
        latencies, degraded = healthz_ms(5)
        _, stats = request(f"{emulator}/_picasso/stats", timeout=10)
        try:
            stats = json.loads(stats)
        except ValueError:
            stats = {}
        emulator_kib, host_kib = stats.get("rss_kib") or 0, resident_kib(host_pid) or 0
        worst["healthz_ms"] = max(worst["healthz_ms"], latencies[-1])
        worst["emulator_kib"] = max(worst["emulator_kib"], emulator_kib)
        worst["host_kib"] = max(worst["host_kib"], host_kib)
        with lock:
            submits, chats = dict(counts["submit"]), dict(counts["chat"])
        ok = lambda c: f"{c.get('ok', 0)}/{sum(c.values()) - c.get('ok', 0)}"  # noqa: E731
        print(f"{time.monotonic() - started:9.0f} {ok(submits):>17} {ok(chats):>15} {latencies[-1]:20.1f} "
              f"{degraded:>12} {emulator_kib / 1024:16.0f} {host_kib / 1024:12.0f} {json.dumps(stats.get('dropped', {}))}",
              flush=True)

    while any(w.is_alive() for w in workers) and time.monotonic() < deadline:
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        report()
    done.set()
    for worker in workers + chatters:
        worker.join(timeout=90)
    report()
    with lock:
        print("submits by outcome:", json.dumps(dict(counts["submit"])))
        print("chats by outcome:", json.dumps(dict(counts["chat"])))
    print(f"took {time.monotonic() - started:.0f} s under load; worst healthz {worst['healthz_ms']:.1f} ms; peak emulator "
          f"RSS {worst['emulator_kib'] / 1024:.0f} MiB; peak host RSS {worst['host_kib'] / 1024:.0f} MiB (sampled)")
    time.sleep(SETTLE_SECONDS)  # the consumers finish what is queued
    latencies, degraded = healthz_ms(20)
    _, stats = request(f"{emulator}/_picasso/stats", timeout=10)
    rss = (json.loads(stats).get("rss_kib") or 0) / 1024 if stats.startswith("{") else 0
    print(f"after the load ({SETTLE_SECONDS} s later): healthz p50 {latencies[9]:.1f} ms, max {latencies[-1]:.1f} ms, "
          f"{degraded} of 20 not 200; emulator RSS {rss:.0f} MiB, host RSS {(resident_kib(host_pid) or 0) / 1024:.0f} MiB")
    failed = sum(c for outcome_, c in counts["submit"].items() if outcome_ != "ok")
    return 1 if failed else 0


if __name__ == "__main__":
    host_url, emulator_url, pid, count, seconds, every = sys.argv[1:7]
    sys.exit(main(host_url, emulator_url, int(pid), int(count), float(seconds), float(every)))
