#!/usr/bin/env python3
"""Crash test: kill -9 the proxy under concurrent load, restart it, and check the ledger.

Invariant 1 of the design: the final bytes of every answer leave only after the call's row has
committed. So every response a client received COMPLETE must have its committed row after a
crash, with the usage the client saw and an exact cost; and every row in the ledger must be
consistent. Runs a few rounds with different seeds (each seed picks the kill moment and the
request mix). Standard library only.
"""
import argparse
import http.client
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

OUTCOMES = {
    "ok", "upstream_error", "upstream_unreachable", "timeout", "client_cancelled", "interrupted",
    "refused_auth", "refused_bad_request", "refused_too_large", "refused_not_found",
    "refused_unknown_model", "refused_unpriced", "refused_model", "refused_concurrency",
    "refused_rate", "refused_cap", "refused_quota", "refused_breaker", "refused_provider_busy",
}


def start_server(args, log_path):
    offset = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [args.tokenctl, "serve", "--policies", args.policies, "--db", args.db, "--port", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.time() + 20
    while time.time() < deadline:
        with open(log_path, "rb") as f:
            f.seek(offset)
            found = re.findall(rb"listening on http://127\.0\.0\.1:(\d+)", f.read())
        if found:
            return proc, int(found[-1])
        if proc.poll() is not None:
            sys.exit(f"tokenctl exited early with {proc.returncode}; see {log_path}")
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"tokenctl did not start; see {log_path}")


class Load:
    """Clients sending a mix of calls until the server dies; records what each one received."""

    def __init__(self, port, key, seed, workers):
        self.port, self.key, self.workers = port, key, workers
        self.rng = random.Random(seed)
        self.seed = seed
        self.lock = threading.Lock()
        self.complete = {}   # request id -> usage the client saw (dict)
        self.sent = 0
        self.slow_sent = {}  # request id of a slow call -> when it was sent
        self.stop = threading.Event()

    def run_worker(self, index, slow=False):
        rng = random.Random(self.seed * 1000 + index)
        n = 0
        while not self.stop.is_set():
            n += 1
            rid = f"crash-{self.seed}-{index}-{n}"
            kind = "slow" if slow else rng.choice(["openai", "openai-stream", "anthropic", "anthropic-stream"])
            with self.lock:
                self.sent += 1
                if slow:
                    self.slow_sent[rid] = time.time()
            try:
                usage = self.call(rid, kind)
            except (OSError, http.client.HTTPException, ValueError):
                usage = None   # the server died mid-call: the client did not get it complete
                time.sleep(0.01)
            if usage is not None:
                with self.lock:
                    self.complete[rid] = usage

    def call(self, rid, kind):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            stream = kind.endswith("-stream")
            if kind.startswith("openai") or kind == "slow":
                path = "/v1/chat/completions"
                body = {"model": "gpt-4.1-mini" if kind == "slow" else "gpt-4o-mini", "messages": [{"role": "user", "content": f"hello {rid}"}],
                        "stream": stream}
                if stream:
                    body["stream_options"] = {"include_usage": True}
                headers = {"authorization": f"Bearer {self.key}"}
            else:
                path = "/v1/messages"
                body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                        "messages": [{"role": "user", "content": f"hello {rid}"}]}
                headers = {"x-api-key": self.key, "anthropic-version": "2023-06-01"}
            headers.update({"content-type": "application/json", "x-request-id": rid})
            conn.request("POST", path, json.dumps(body), headers)
            resp = conn.getresponse()
            data = resp.read()   # raises IncompleteRead if the body was cut
            if resp.status != 200:
                return None
            return self.usage(kind, data)
        finally:
            conn.close()

    @staticmethod
    def usage(kind, data):
        text = data.decode()
        if kind in ("openai", "slow"):
            u = json.loads(text)["usage"]
            return {"input": u["prompt_tokens"], "output": u["completion_tokens"]}
        if kind == "anthropic":
            u = json.loads(text)["usage"]
            return {"input": u["input_tokens"], "output": u["output_tokens"]}
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        if kind == "openai-stream":
            if not events or events[-1] != "[DONE]":
                raise ValueError("stream without [DONE]")
            u = json.loads(events[-2])["usage"]
            return {"input": u["prompt_tokens"], "output": u["completion_tokens"]}
        if "event: message_stop" not in text:
            raise ValueError("stream without message_stop")
        start = json.loads(events[0])["message"]["usage"]
        delta = [json.loads(e) for e in events if '"message_delta"' in e][-1]["usage"]
        return {"input": start["input_tokens"], "output": delta["output_tokens"]}


def check_ledger(db, complete, in_flight=()):
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = con.execute("SELECT * FROM calls").fetchall()
    problems = []
    ids = [r["id"] for r in rows]
    if len(ids) != len(set(ids)):
        problems.append("duplicate call ids")
    by_request = {}
    for r in rows:
        by_request.setdefault(r["request_id"], []).append(r)
        if r["outcome"] not in OUTCOMES:
            problems.append(f"{r['request_id']}: unknown outcome {r['outcome']}")
        if r["ended_at"] < r["started_at"] or r["latency_us"] != r["ended_at"] - r["started_at"]:
            problems.append(f"{r['request_id']}: inconsistent times")
        expected = sum((r[t] or 0) * (r[p] or 0) for t, p in [
            ("input_tokens", "price_input"), ("cached_input_tokens", "price_cached_input"),
            ("cache_write_tokens", "price_cache_write"), ("output_tokens", "price_output")])
        if r["cost_pd"] != expected:
            problems.append(f"{r['request_id']}: cost {r['cost_pd']} != tokens x prices {expected}")
        if r["outcome"] == "ok" and r["usage_source"] != "provider":
            problems.append(f"{r['request_id']}: ok without provider usage")
    for rid, usage in complete.items():
        found = by_request.get(rid, [])
        if len(found) != 1:
            problems.append(f"{rid}: received complete by the client but {len(found)} rows")
            continue
        r = found[0]
        if r["outcome"] != "ok" or r["status"] != 200:
            problems.append(f"{rid}: received complete but recorded {r['outcome']} {r['status']}")
        if r["input_tokens"] + r["cached_input_tokens"] + r["cache_write_tokens"] != usage["input"] \
                and r["input_tokens"] != usage["input"]:
            problems.append(f"{rid}: input tokens {r['input_tokens']} != {usage['input']} seen by the client")
        if r["output_tokens"] != usage["output"]:
            problems.append(f"{rid}: output tokens {r['output_tokens']} != {usage['output']} seen by the client")
    for rid in in_flight:
        found = by_request.get(rid, [])
        if len(found) != 1 or found[0]["outcome"] != "interrupted":
            problems.append(f"{rid}: in flight (and journaled) at the crash, but recorded as "
                            f"{[r['outcome'] for r in found] or 'nothing'}")
    con.close()
    return rows, problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenctl", required=True)
    parser.add_argument("--policies", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    failed = False
    for seed in [int(s) for s in args.seeds.split(",")]:
        rng = random.Random(seed)
        proc, port = start_server(args, args.logs)
        load = Load(port, args.key, seed, args.workers)
        threads = [threading.Thread(target=load.run_worker, args=(i,)) for i in range(args.workers)]
        # Two clients of a slow model (3 s to first byte): certainly in flight at the kill.
        threads += [threading.Thread(target=load.run_worker, args=(args.workers + i, True)) for i in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.8 + rng.random() * 1.2)
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        load.stop.set()
        for t in threads:
            t.join(timeout=15)

        # The next start must open the crashed ledger; it is stopped cleanly before checking.
        log_offset = os.path.getsize(args.logs)
        proc, _ = start_server(args, args.logs)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        # A slow call sent well before the kill (the journal is rewritten every 0.2 s) that did
        # not complete must be recorded as interrupted by the restart.
        journaled = [rid for rid, at in load.slow_sent.items()
                     if killed_at - at >= 0.6 and rid not in load.complete]
        rows, problems = check_ledger(args.db, load.complete, journaled)
        # Rows answered from the ledger's journal whose commit the kill beat (when the kill fell
        # within the writer's few milliseconds behind the answers): replayed by the restart.
        with open(args.logs, "rb") as f:
            f.seek(log_offset)
            replay = re.search(rb"\brows=(\d+).*ledger journal", f.read())
        replayed = int(replay.group(1)) if replay else 0
        if code != 0:
            problems.append(f"restart after the crash exited with {code}")
        status = "ok  " if not problems else "FAIL"
        print(f"{status} seed {seed}: {load.sent} calls sent, {len(load.complete)} received complete, "
              f"all with their rows ({replayed} of them replayed from the ledger's journal); "
              f"{len(journaled)} in flight at the kill recorded as interrupted at restart; "
              f"{len(rows)} rows in the ledger, consistent" if not problems else
              f"{status} seed {seed}: {len(problems)} problems")
        for p in problems[:20]:
            print("     " + p)
        failed = failed or bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
