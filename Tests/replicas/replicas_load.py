#!/usr/bin/env python3
"""Concurrent calls spread over several tokenctl replicas (scripts/replicas-test.sh).

Sends N chat calls at once, round-robin over the replica URLs, each from one of the given users'
keys (also round-robin), and writes one JSON line per call: request id, replica index, user,
status, and whether the body arrived complete. Standard library only.
"""
import argparse, http.client, json, sys, threading, time, urllib.parse


def call(url, key, rid, body, timeout):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        c.request("POST", "/v1/chat/completions", body=body, headers={
            "authorization": f"Bearer {key}", "content-type": "application/json", "x-request-id": rid})
        r = c.getresponse()
        data = r.read()
        complete = True
        if r.status == 200:
            complete = bool(json.loads(data).get("usage"))
        return r.status, complete
    except Exception as e:  # a killed replica: the connection breaks
        return 0, False
    finally:
        c.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--replicas", required=True, help="comma-separated base URLs")
    p.add_argument("--keys", required=True, help="comma-separated user=key pairs")
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--prefix", required=True, help="request id prefix")
    p.add_argument("--max-tokens", type=int, default=50)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    replicas = a.replicas.split(",")
    users = [kv.split("=", 1) for kv in a.keys.split(",")]
    body = json.dumps({"model": "gpt-exact", "max_tokens": a.max_tokens,
                       "messages": [{"role": "user", "content": "hello"}]}).encode()
    results = [None] * a.calls
    start = threading.Barrier(a.calls)

    def worker(i):
        user, key = users[i % len(users)]
        replica = i % len(replicas)
        rid = f"{a.prefix}-{i:04d}"
        start.wait()
        status, complete = call(replicas[replica], key, rid, body, a.timeout)
        results[i] = {"rid": rid, "replica": replica, "user": user, "status": status, "complete": complete}

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.calls)]
    for t in threads: t.start()
    for t in threads: t.join()
    with open(a.out, "w") as f:
        for r in results: f.write(json.dumps(r) + "\n")
    by = {}
    for r in results: by[r["status"]] = by.get(r["status"], 0) + 1
    print(f"{a.prefix}: {a.calls} calls over {len(replicas)} replicas: statuses {dict(sorted(by.items()))}")


if __name__ == "__main__":
    main()
