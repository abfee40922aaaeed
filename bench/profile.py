#!/usr/bin/env python3
"""Turns bench/profile.sh's `perf script` output into markdown: per thread, what kind of code its
CPU runs (the sampled frame) and which step of a call it serves (the innermost step on the stack),
in % of the thread's samples and µs per call; then where the event loop's mallocs are made."""
import argparse
import collections
import re
import subprocess

SAMPLE_US = 1e6 / 999  # perf record -F 999: a sample per ~1 ms of the thread's CPU

# What kind of code a sample is in, from its innermost frame (symbol, library).
KINDS = [
    ("kernel", lambda s, d: d == "[kernel.kallsyms]"),
    ("Swift retain/release", lambda s, d: re.search(r"swift_(retain|release|bridgeObject(Retain|Release)|unknownObject)|doDecrementSlow|swift_release_dealloc", s)),
    ("malloc/free", lambda s, d: "mimalloc" in d or re.search(r"^(malloc|free|_int_malloc|_int_free|cfree)|swift_(slowAlloc|slowDealloc|allocObject|deallocObject|allocBox)", s)),
    ("exclusivity checks", lambda s, d: re.search(r"swift_(begin|end)Access|AccessSet|SwiftTLSContext", s)),
    ("value copies/destroys", lambda s, d: re.search(r"^(initializeWithCopy|destroy|assignWithCopy|initializeWithTake|initializeBufferWithCopyOfBuffer|outlined (init with copy|copy|destroy|retain|release)|swift_arrayDestroy|swift_arrayInitWithCopy|tuple_destroy)", s)),
    ("memcpy/memmove/memset", lambda s, d: re.search(r"mem(cpy|move|set|cmp)", s)),
    ("libcurl", lambda s, d: "libcurl" in d),
    ("SQLite", lambda s, d: "sqlite" in d),
    ("HTTP parser (llhttp)", lambda s, d: "llhttp" in s),
    ("SwiftNIO", lambda s, d: re.search(r"^(\(extension in )?NIO|^(specialized |partial apply for |closure #\d+ in |protocol witness for )*(\(extension in \w+\):)?(ByteBuffer|Channel|ChannelHandlerContext|ChannelPipeline|EventLoop|SelectableEventLoop|BaseSocketChannel|BaseStreamSocketChannel|PendingWritesManager|HTTP\w+|Selector|Posix|CircularBuffer|NIO\w+|ByteToMessage\w+)\b", s)),
    ("tokenctl", lambda s, d: OURS.search(s)),
    ("locks, clocks, thread-locals", lambda s, d: re.search(r"pthread_mutex|lll_lock|clock_gettime|__tls_get_addr", s)),
    # Generic code of the standard library specialised into the executable counts as its own.
    ("Swift standard library", lambda s, d: "libswift" in d or "Foundation" in d or (d == "tokenctl" and s != "[unknown]")),
    ("other", lambda s, d: True),
]

# Steps of a call, matched on demangled names from the innermost frame outwards: a system call
# or a tokenctl step takes the sample at its first match (a retain inside the admission counts
# for the admission; a writev a tokenctl step makes, as the socket write); SwiftNIO's code counts
# only if no tokenctl step is further out (the request's handling runs inside NIO's read).
# Wake-ups of another thread count as such wherever they are on the stack (libcurl's is a send).
HANDOFF_STEPS = [
    ("hand-off: wake the curl thread", r"^curl_multi_wakeup$"),
    ("hand-off: wake an event loop", r"_wakeupSelector"),
]
SYSTEM_STEPS = [
    ("socket write (writev)", r"^__GI___writev$|^writev$|^__send$|^__libc_send|^sendto$|^sendmsg$"),
    ("socket read", r"^__GI___libc_read$|^read$|^recvfrom$|^__libc_recv"),
    ("curl: wait for sockets", r"^curl_multi_poll$|^Curl_poll$|^__?poll$"),
    ("curl: transfers (libcurl)", r"^curl_multi_perform$|^curl_multi_info_read$|^curl_easy_"),
]
TOKENCTL_STEPS = [
    ("identify: the key's hash, its principal", r"Admit\.identify|APIKeySecret|PrincipalDirectory|ProxyHandler\.secret|ProxyHandler\.refusedOnHead"),
    ("the call's ids and route", r"ProxyHandler\.line\(|CallIdentity|ProxyHandler\.path\(|ProxyHandler\.dialect\("),
    ("admit: plan, limits, price", r"Admit\.|Enforcer|RateLimiter|GCRA|QuotaBook|PriceBook|Pricing\.|ConcurrencyLimit|Admission\."),
    ("read the body's fields (model, stream, caps)", r"RequestPeek"),
    ("forward: the upstream request, its curl handle", r"Forward\.|UpstreamClient|CurlTransfer\.init|CurlHeaderList|CurlDriver\.submit|ProxiedCall\.startTransfer|ProxiedCall\.acquireSlot"),
    ("curl: our callbacks and hand-over", r"CurlTransfer|CurlDriver|CurlMulti"),
    ("meter: usage from the answer", r"ResponseMeter|ResponseUsage|JSONScanner|ServerSentEvent|SSE"),
    ("relay: the answer's head and body", r"ProxiedCall\.upstreamHead|ProxiedCall\.upstreamBody|ProxyHandler\.writeHead|ProxyHandler\.writeBody|LimitHeaders|CredentialScrub"),
    ("settle: cost, the row", r"ProxiedCall\.settle|ProxiedCall\.record|CallRecord|Hold\.settle|LedgerEntry"),
    ("record: journal write, queue to the writer", r"LedgerJournal|GroupCommitQueue|JournalRecord|LedgerWriter|GatewayContext\.record"),
    ("metrics", r"GatewayMetrics"),
    ("the rest of the request's handling (tokenctl)", r"ProxyHandler|ProxiedCall|GatewayContext|ClientConnection"),
]
NIO_STEPS = [
    ("socket write (writev)", r"BaseSocketChannel\.flush|PendingWritesManager|writeToSocket"),
    ("socket read", r"readFromSocket"),
    ("HTTP parse and encode (NIO)", r"HTTPDecoder|HTTPResponseEncoder|HTTPRequestEncoder|llhttp|BetterHTTPParser|HTTPHeaders|HTTPServerProtocolErrorHandler|HTTPResponseHeadersValidator"),
    ("the loop: waits, tasks, wake-ups (epoll)", r"_blockingWaitForWork|whenReady|epoll|runOneLoopTick|SelectableEventLoop"),
]
OURS = re.compile(r"^(specialized |partial apply for |closure #\d+ in |protocol witness for |outlined \w+ of |static |merged )*"
                  r"(\(extension in \w+\):)?(ProxyHandler|ProxiedCall|Admit|Admission|Forward|Gateway|Ledger|Journal|GroupCommit|"
                  r"CallRecord|CallRequest|CallIdentity|Curl|Upstream|Response|Request|JSONScanner|Price|Pricing|Quota|Rate|GCRA|"
                  r"Principal|APIKey|Enforcer|Hold|Limit|Credential|Policy|Plan|Usage|Money|Meter)")
def compiled(steps):
    return [(name, re.compile(pattern)) for name, pattern in steps]


HANDOFF_RES, SYSTEM_RES = compiled(HANDOFF_STEPS), compiled(SYSTEM_STEPS)
TOKENCTL_RES, NIO_RES = compiled(TOKENCTL_STEPS), compiled(NIO_STEPS)


def samples(path):
    """[(tid, [(symbol, dso), …innermost first])] from `perf script -F tid,ip,sym,dso`."""
    out, tid, frames = [], None, []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if tid is not None and frames:
                out.append((tid, frames))
            tid, frames = None, []
            continue
        if not line.startswith("\t"):  # "  TID" (right-aligned), then a frame per tabbed line
            tid = line.split()[0]
            continue
        m = re.match(r"\s*[0-9a-f]+ (.*?)(?: \((.*)\))?$", line)
        if m:
            dso = (m.group(2) or "").rsplit("/", 1)[-1]
            frames.append((m.group(1), dso))
    if tid is not None and frames:
        out.append((tid, frames))
    return out


def demangler(all_samples):
    symbols = sorted({s for _, frames in all_samples for s, _ in frames})
    text = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(symbols),
                          capture_output=True, text=True, check=True).stdout.split("\n")
    names = dict(zip(symbols, text))
    return lambda s: names.get(s, s)


def kind_of(symbol, dso):
    return next(name for name, test in KINDS if test(symbol, dso))


def step_of(frames):
    for name, pattern in HANDOFF_RES:
        if any(pattern.search(symbol) for symbol, _ in frames):
            return name
    fallback = None
    for symbol, _ in frames:
        for name, pattern in SYSTEM_RES + TOKENCTL_RES:
            if pattern.search(symbol):
                return name
        if fallback is None:
            fallback = next((name for name, pattern in NIO_RES if pattern.search(symbol)), None)
    return fallback or "other"


def table(title, counter, total, calls, limit=None):
    print(f"| {title} | share | µs per call |")
    print("|---|---|---|")
    for name, n in counter.most_common(limit):
        print(f"| {name} | {100 * n / total:.1f} % | {n * SAMPLE_US / calls:.2f} |")
    print()


def cpu_report(path, calls, threads):
    all_samples = samples(path)
    name_of = demangler(all_samples)
    for label, tid in threads:
        mine = [[(name_of(s), d) for s, d in frames] for t, frames in all_samples if t == tid]
        if not mine:
            continue
        total = len(mine)
        print(f"## {label}: {total * SAMPLE_US / calls:.1f} µs of CPU per call ({total} samples, {calls} calls)\n")
        table("what runs (the sampled frame)", collections.Counter(kind_of(*f[0]) for f in mine), total, calls)
        table("for which step of the call (innermost on the stack)", collections.Counter(step_of(f) for f in mine), total, calls)
        heaviest = collections.Counter()
        for frames in mine:
            for symbol in {s for s, _ in frames if OURS.search(s)}:
                heaviest[symbol[:120]] += 1
        table("tokenctl's functions, with what they call (top 15)", heaviest, total, calls, 15)


def malloc_report(path, calls):
    all_samples = samples(path)
    name_of = demangler(all_samples)
    allocating = re.compile(r"malloc|swift_(slowAlloc|allocObject|allocBox|allocEmptyBox)|^mi_|^_mi_")
    sites = collections.Counter()
    for _, frames in all_samples:
        names = [name_of(s) for s, _ in frames if not allocating.search(name_of(s))]
        first = names[0] if names else "?"
        ours = next((n for n in names[1:] if OURS.search(n)), None)
        site = first[:70] if ours is None else f"{first[:70]} ← {ours[:70]}"
        sites[site] += 1
    total = len(all_samples)
    print(f"## The event loop's mallocs: {total / calls:.1f} per call ({total} in {calls} calls)\n")
    print("Where each is made: the allocating frame, and the innermost tokenctl function that called it.\n")
    print("| made in | per call |")
    print("|---|---|")
    for site, n in sites.most_common(40):
        print(f"| {site.replace('|', '/')} | {n / calls:.2f} |")
    print()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu", required=True)
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--loop", required=True)
    parser.add_argument("--curl", required=True)
    parser.add_argument("--mallocs")
    parser.add_argument("--malloc-calls", type=int)
    args = parser.parse_args()
    cpu_report(args.cpu, max(1, args.calls), [("Event loop", args.loop), ("Curl thread", args.curl)])
    if args.mallocs and args.malloc_calls:
        malloc_report(args.mallocs, args.malloc_calls)


main()
