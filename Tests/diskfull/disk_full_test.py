#!/usr/bin/env python3
"""Disk-full test: the ledger lives on a small tmpfs that fills up while calls are served.

Expected (fail closed): once a commit fails, new calls get 503 `ledger_unavailable` at once and
/healthz says 503. A call is answered once its row is in the ledger's journal; a call whose row
could be written neither there nor in SQLite waits (its answer's final bytes wait for its row).
Which of the two files runs out of room first varies, so the disk may fill with a call waiting,
or with a 503 after every answered call's row went to the journal. After space is freed the
writer's retry lands the rows, a waiting call completes, and service resumes. Every 200 the
clients received has its row.
"""
import argparse
import http.client
import json
import os
import sqlite3
import sys
import threading
import time


def call(port, key, rid, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 2000}]})
        conn.request("POST", "/v1/chat/completions", body, {
            "authorization": f"Bearer {key}", "content-type": "application/json", "x-request-id": rid})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def healthz(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--filler", required=True)
    args = p.parse_args()
    problems = []
    ok_ids = []

    # Calls one after the other until one cannot be recorded (its answer does not come back), or
    # a commit failed and calls are refused.
    stuck = {}
    refused_first = None
    n = 0
    while n < 5000:
        n += 1
        rid = f"fill-{n}"
        result = {}
        t = threading.Thread(target=lambda: result.update(r=call(args.port, args.key, rid)), daemon=True)
        t.start()
        t.join(timeout=3)
        if t.is_alive():
            stuck = {"id": rid, "thread": t, "result": result}
            break
        status, _ = result["r"]
        if status == 200:
            ok_ids.append(rid)
        elif status == 503:
            refused_first = rid
            break
    if stuck:
        print(f"ok   disk full after {len(ok_ids)} answered calls: call {stuck['id']} waits for its row")
    elif refused_first:
        print(f"ok   disk full after {len(ok_ids)} answered calls (rows in the journal): {refused_first} refused")
    else:
        sys.exit(f"FAIL the disk never filled up after {n} calls")

    # Failing closed: health says so, and a new call is refused at once.
    deadline = time.time() + 20
    status, text = healthz(args.port)
    while status == 200 and time.time() < deadline:
        time.sleep(0.1)
        status, text = healthz(args.port)
    if status != 503 or '"failing"' not in text:
        problems.append(f"/healthz while full: {status} {text}")
    started = time.time()
    status, text = call(args.port, args.key, "refused-while-full", timeout=5)
    if status != 503 or "ledger_unavailable" not in text:
        problems.append(f"a new call while full got {status}: {text[:200]}")
    elif time.time() - started > 2:
        problems.append("the refusal while full was not immediate")
    else:
        print("ok   while full: /healthz 503 degraded, new calls 503 ledger_unavailable at once")

    # Space comes back: the waiting row lands, the call completes, service resumes.
    os.remove(args.filler)
    if stuck:
        stuck["thread"].join(timeout=30)
        if stuck["thread"].is_alive() or stuck["result"].get("r", (0,))[0] != 200:
            problems.append(f"{stuck['id']}: did not complete after space was freed ({stuck['result']})")
        else:
            ok_ids.append(stuck["id"])
    # The writer retries with a backoff of up to a second: health returns within a few.
    deadline = time.time() + 20
    status, _ = healthz(args.port)
    while status != 200 and time.time() < deadline:
        time.sleep(0.1)
        status, _ = healthz(args.port)
    after = call(args.port, args.key, "after-space")[0]
    if status != 200 or after != 200:
        problems.append(f"after space was freed: /healthz {status}, a call {after}")
    else:
        ok_ids.append("after-space")
        print("ok   space freed: " + ("the waiting call completed, " if stuck else "")
              + "/healthz 200, calls served again")

    # The writer commits journaled rows a few milliseconds after their answers.
    deadline = time.time() + 10
    while True:
        con = sqlite3.connect(args.db)
        recorded = {r[0] for r in con.execute("SELECT request_id FROM calls WHERE outcome = 'ok'")}
        con.close()
        missing = [rid for rid in ok_ids if rid not in recorded]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.1)
    if missing:
        problems.append(f"{len(missing)} answered calls have no row: {missing[:5]}")
    else:
        print(f"ok   all {len(ok_ids)} answered calls have their row; nothing accepted was lost")
    for problem in problems:
        print("FAIL " + problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
