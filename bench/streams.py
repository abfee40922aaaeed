#!/usr/bin/env python3
"""Streaming client for bench/run: raw asyncio sockets, stdlib only.

  streams.py timing URL --streams N --concurrency C [--chunks 64] [--gap-ms 20] [--key K] [--model M]
      N streaming chat completions, C at a time. Per stream: time to the first SSE event, time
      to the first content delta (TTFT), the gaps between content deltas, how many deltas
      arrived (vs --chunks sent), and how many arrived "batched" (in the same socket read as the
      previous delta, or less than a fifth of the gap after it). Prints one JSON object.

  streams.py hold URL --streams N [--key K] [--pids P,P,...] [--upstream-port PORT]
      Opens N streams against a slow FakeLLM (its first delta comes minutes later), waits until
      every stream has its first event (the stream is open, idle, held by the proxy), waits 1 s,
      reads the RSS of the --pids (summed) and how many TCP connections they have open to
      PORT (the provider), closes every connection, waits 3 s, reads the RSS again.
      Prints one JSON object with RSS before, while open and after, in KiB.

--model picks the model named in the body (bench/run routes each model to a FakeLLM with the
pace wanted: tokenctl does not forward x-fake-* headers); --chunks and --gap-ms say what that
FakeLLM sends, for the counts and the batching check.
"""
import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from urllib.parse import urlsplit

def request_bytes(url, key, model, prompt_bytes=0):
    prompt = b"Say hello in five words." + b" pad" * max(0, (prompt_bytes - 24) // 4)
    body = b'{"model":"%s","stream":true,"messages":[{"role":"user","content":"%s"}]}' % (model.encode(), prompt)
    u = urlsplit(url)
    lines = [f"POST {u.path} HTTP/1.1", f"Host: {u.netloc}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", "Accept: text/event-stream"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Stream:
    """One HTTP/1.1 streaming exchange, decoded as it arrives: head, chunked body, SSE events."""

    def __init__(self):
        self.status = None
        self.events = []          # (arrival ns, read number, is content delta)
        self.error = None
        self.first_event = None   # asyncio.Event set on the first SSE event (hold mode)

    async def run(self, host, port, payload, first_event=None):
        self.first_event = first_event
        self.sent_ns = time.perf_counter_ns()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as e:
            self.error = f"connect: {e}"
            return
        try:
            self.sent_ns = time.perf_counter_ns()
            writer.write(payload)
            await self._read(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as e:
            self.error = f"{type(e).__name__}: {e}"
        finally:
            writer.close()

    async def _read(self, reader):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        remaining = int(headers["content-length"]) if "content-length" in headers else None
        raw = b""       # undecoded transfer bytes
        body = b""      # decoded bytes not yet split into SSE events
        reads = 0
        while True:
            data = await reader.read(65536)
            now = time.perf_counter_ns()
            reads += 1
            if not data:
                break
            if chunked:
                raw += data
                done = False
                while True:  # decode every whole chunk in raw
                    eol = raw.find(b"\r\n")
                    if eol < 0:
                        break
                    size = int(raw[:eol].split(b";")[0], 16)
                    if size == 0:
                        done = True
                        break
                    if len(raw) < eol + 2 + size + 2:
                        break
                    body += raw[eol + 2:eol + 2 + size]
                    raw = raw[eol + 2 + size + 2:]
            else:
                body += data
                if remaining is not None:
                    remaining -= len(data)
                    done = remaining <= 0
                else:
                    done = False
            body = body.replace(b"\r\n", b"\n")
            while b"\n\n" in body:
                event, body = body.split(b"\n\n", 1)
                content = b'"delta":{"content":"' in event  # not the opening role event
                self.events.append((now, reads, content))
                if self.first_event is not None and not self.first_event.is_set():
                    self.first_event.set()
            if done:
                break


def pct(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def timing(args):
    u = urlsplit(args.url)
    payload = request_bytes(args.url, args.key, args.model, args.prompt_bytes)
    sem = asyncio.Semaphore(args.concurrency)
    streams = [Stream() for _ in range(args.streams)]

    async def one(s):
        async with sem:
            await s.run(u.hostname, u.port, payload)

    await asyncio.gather(*(one(s) for s in streams))
    ttft, first_event, gaps, counts, batched, errors = [], [], [], [], 0, 0
    for s in streams:
        if s.error or s.status != 200:
            errors += 1
            continue
        deltas = [(t, r) for t, r, c in s.events if c]
        counts.append(len(deltas))
        if s.events:
            first_event.append((s.events[0][0] - s.sent_ns) / 1e3)
        if deltas:
            ttft.append((deltas[0][0] - s.sent_ns) / 1e3)
        for (t0, r0), (t1, r1) in zip(deltas, deltas[1:]):
            gap = (t1 - t0) / 1e3
            gaps.append(gap)
            if r1 == r0 or gap < args.gap_ms * 1000 / 5:
                batched += 1
    print(json.dumps({
        "streams": args.streams, "concurrency": args.concurrency, "errors": errors,
        "ttft_p50_us": pct(ttft, 50), "ttft_p99_us": pct(ttft, 99),
        "first_event_p50_us": pct(first_event, 50), "first_event_p99_us": pct(first_event, 99),
        "gap_p50_us": pct(gaps, 50), "gap_p99_us": pct(gaps, 99),
        "deltas_sent": args.chunks * (args.streams - errors), "deltas_received": sum(counts),
        "deltas_min_per_stream": min(counts) if counts else 0, "batched": batched,
        # Each stream's, in the order they were sent, when few (which one of a round was slow).
        **({"first_event_each_us": [round(v) for v in first_event],
            "ttft_each_us": [round(v) for v in ttft]} if args.streams <= 10 else {}),
    }))


def connections_to(pids, port):
    """Established TCP connections of these processes whose remote port is `port`."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except FileNotFoundError:
            pass
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    # remote address "HEX:PORT", state 01 = ESTABLISHED, inode in column 10
                    if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                        count += 1
        except FileNotFoundError:
            pass
    return count


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


async def hold(args):
    u = urlsplit(args.url)
    pids = [int(p) for p in args.pids.split(",") if p]
    payload = request_bytes(args.url, args.key, args.model, args.prompt_bytes)
    before = rss_kib(pids)
    streams = [Stream() for _ in range(args.streams)]
    opened = [asyncio.Event() for _ in streams]
    connecting = asyncio.Semaphore(200)  # bounded connect burst: the listen backlogs are 1024

    async def one(s, ev):
        async with connecting:
            task = asyncio.ensure_future(s.run(u.hostname, u.port, payload, ev))
            await asyncio.wait([task, asyncio.ensure_future(ev.wait())], return_when=asyncio.FIRST_COMPLETED)
        try:
            await task
        finally:
            ev.set()  # a failed stream counts as settled

    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(one(s, ev)) for s, ev in zip(streams, opened)]
    await asyncio.gather(*(ev.wait() for ev in opened))
    ramp_s = time.monotonic() - t0
    await asyncio.sleep(1)
    held = sum(1 for s in streams if s.events and not s.error)
    during = rss_kib(pids)
    upstream = connections_to(pids, args.upstream_port) if args.upstream_port else None
    errors = [s.error or f"status {s.status}" for s in streams if s.error or (s.status and s.status != 200) or not s.events]
    for t in tasks:  # the client goes away: every connection is closed
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(3)
    after = rss_kib(pids)
    print(json.dumps({
        "streams": args.streams, "held_at_sample": held, "errors": len(errors),
        "first_errors": sorted(set(errors))[:3], "ramp_s": round(ramp_s, 2),
        "rss_before_kib": before, "rss_during_kib": during, "rss_after_kib": after,
        "upstream_connections": upstream,
    }))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["timing", "hold"])
    p.add_argument("url")
    p.add_argument("--key", default=os.environ.get("TOKENCTL_KEY", ""))
    p.add_argument("--streams", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--chunks", type=int, default=64)
    p.add_argument("--gap-ms", type=float, default=20)
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--prompt-bytes", type=int, default=0,
                   help="pad the prompt to about this many bytes (a long context; default: 24 bytes)")
    p.add_argument("--pids", default="")
    p.add_argument("--upstream-port", type=int, default=0)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(timing(args) if args.mode == "timing" else hold(args))


if __name__ == "__main__":
    main()
