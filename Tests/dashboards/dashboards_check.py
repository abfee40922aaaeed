#!/usr/bin/env python3
"""Evaluates every PromQL expression of the Grafana dashboards and the alert rules against a
Prometheus that scrapes a live tokenctl (started by scripts/dashboards-check.sh).

Steps: wait for Prometheus, send mixed traffic to tokenctl in two waves (so rates are non-zero),
wait until Prometheus has scraped all of it and evaluated the rules, then:

- dashboards/*.json: structural checks (schemaVersion, a `datasource` variable of type
  prometheus, every panel and query bound to `${datasource}`, no hard-coded data source uid),
  then each target's `expr` and each query variable's `label_values(metric, label)` is run with
  Grafana's variables replaced by concrete values (see GRAFANA_VARIABLES; template variables get
  their All value `.*`). Each must succeed and return at least one series.
- alerts.yaml: Prometheus loaded it (rule_files); each rule must be healthy after evaluation. An
  alert's expression usually returns nothing while all is well (its threshold filters every
  series out), so its top-level comparison gets the `bool` modifier (`x > 10` becomes
  `x > bool 10`): the same selectors and arithmetic, but every compared series is kept with
  value 0 or 1. That must return at least one series — a misspelt metric or label still gives
  none. The expression as written must evaluate too.

Standard library only. Exits 1 listing every failure.
"""
import argparse
import glob
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

# Concrete values for Grafana's built-in variables. 15s: several 1 s scrapes in every window.
GRAFANA_VARIABLES = {
    "__rate_interval": "15s",
    "__interval": "5s",
    "__range": "5m",
    "__range_s": "300",
    "__interval_ms": "5000",
}
DEADLINE = time.monotonic() + 50


def http(url, data=None, headers=None, timeout=10):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait(what, predicate, timeout=20.0, every=0.2):
    end = min(time.monotonic() + timeout, DEADLINE)
    while time.monotonic() < end:
        try:
            if predicate():
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(every)
    sys.exit(f"FAIL timed out waiting for {what}")


# ---------------------------------------------------------------- traffic

def traffic(proxy, keys, wave):
    """One wave of calls; returns how many were sent. Fails if a status is not the expected one.
    Carol's plan allows 3 calls a minute: her fourth, in the second wave, is rate limited."""
    def chat(model, stream=False):
        return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello there"}]}

    calls = [
        # (key, path, body, extra headers, expected status)
        ("alice", "/v1/chat/completions", chat("gpt-4o-mini"), {}, 200),
        ("alice", "/v1/chat/completions", chat("gpt-4o-mini", stream=True), {}, 200),
        ("alice", "/v1/chat/completions", chat("gpt-4.1-nano"), {}, 200),
        ("dave", "/v1/chat/completions", chat("gpt-4o-mini", stream=True), {}, 200),
        ("carol", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64,
                                   "messages": [{"role": "user", "content": "hello"}]}, {}, 200),
        ("carol", "/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64, "stream": True,
                                   "messages": [{"role": "user", "content": "hello"}]}, {}, 200 if wave == 1 else 429),
        ("svc", "/v1/chat/completions", chat("gpt-4o-mini"), {"x-tokenctl-user": "dash-erin"}, 200),
        ("svc", "/v1/chat/completions", chat("gpt-4.1-nano"), {"x-tokenctl-user": "dash-frank"}, 200),
        ("dave", "/v1/responses", {"model": "gpt-4.1", "input": "news?", "tools": [{"type": "web_search"}]}, {}, 200),
        ("alice", "/v1/chat/completions", chat("gpt-4.1-mini"), {}, 500),        # upstream error
        ("bob", "/v1/chat/completions", chat("gpt-4o-mini"), {}, 429),           # quota
        (None, "/v1/chat/completions", chat("gpt-4o-mini"), {}, 401),            # auth
        ("dave", "/v1/chat/completions", chat("no-such-model"), {}, 404),        # unknown model
    ]
    for key, path, body, extra, expected in calls:
        headers = {"content-type": "application/json", **extra}
        if key and path == "/v1/messages":
            headers.update({"x-api-key": keys[key], "anthropic-version": "2023-06-01"})
        elif key:
            headers["authorization"] = "Bearer " + keys[key]
        status, answer = http(proxy + path, json.dumps(body).encode(), headers)
        if status != expected:
            sys.exit(f"FAIL traffic: {key} {path} {body.get('model')} answered {status}, expected {expected}: {answer[:200]!r}")
    return len(calls)


# ---------------------------------------------------------------- Prometheus

def query(prom, expr):
    status, body = http(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    if status != 200 or answer.get("status") != "success":
        return None, answer.get("error", f"HTTP {status}")
    data = answer["data"]
    if data["resultType"] in ("scalar", "string"):
        return 1, None
    return len(data["result"]), None


def scalar(prom, expr):
    count, error = query(prom, expr)
    if error or not count:
        return None
    _, body = http(prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    result = json.loads(body)["data"]["result"]
    return float(result[0]["value"][1])


def with_bool(expr):
    """Adds `bool` to every comparison at the top level of `expr` (outside (), [], {} and quotes)."""
    out, depth, quote, i = [], 0, None, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1]); i += 2; continue
            if c == quote:
                quote = None
            i += 1; continue
        if c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            match = re.match(r"(==|!=|>=|<=|>|<)(?!~)", expr[i:])
            if match and not expr[i:].startswith("!~") and not expr[i - 1:i] in ("=", "!"):
                out.append(match.group(1) + " bool")
                i += len(match.group(1)); continue
        out.append(c)
        i += 1
    return "".join(out)


# ---------------------------------------------------------------- dashboards

def dashboard_queries(path, problems):
    """The dashboard's (title, expr) pairs, after structural checks (appended to problems)."""
    board = json.load(open(path))
    name = os.path.basename(path)
    if not isinstance(board.get("schemaVersion"), int):
        problems.append(f"{name}: no schemaVersion")
    variables = board.get("templating", {}).get("list", [])
    if not any(v.get("name") == "datasource" and v.get("type") == "datasource" and v.get("query") == "prometheus"
               for v in variables):
        problems.append(f"{name}: no `datasource` variable of type datasource/prometheus")
    template = {v["name"]: ".*" for v in variables if v.get("type") in ("query", "custom")}

    def check_datasource(where, node):
        for key, value in node.items() if isinstance(node, dict) else enumerate(node):
            if key == "datasource" and isinstance(value, dict) and value.get("type") != "grafana":
                if value != {"type": "prometheus", "uid": "${datasource}"}:
                    problems.append(f"{name}: {where}: data source {value} is not the ${{datasource}} variable")
            elif isinstance(value, (dict, list)):
                check_datasource(where, value)

    queries = []

    def substitute(expr, where):
        def replace(match):
            var = match.group(1) or match.group(2)
            if var in GRAFANA_VARIABLES:
                return GRAFANA_VARIABLES[var]
            if var in template:
                return template[var]
            problems.append(f"{name}: {where}: unknown variable ${var}")
            return match.group(0)
        return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", replace, expr)

    def walk(panels):
        for panel in panels:
            check_datasource(panel.get("title", "?"), panel)
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if not expr:
                    problems.append(f"{name}: {panel.get('title')}: target {target.get('refId')} has no expr")
                    continue
                title = f"{name}: {panel.get('title')} [{target.get('refId')}]"
                queries.append((title, substitute(expr, title)))

    walk(board.get("panels", []))
    for variable in variables:
        if variable.get("type") != "query":
            continue
        check_datasource(f"variable {variable['name']}", variable)
        definition = variable.get("definition") or variable.get("query", {}).get("query", "")
        match = re.fullmatch(r"\s*label_values\((.+),\s*(\w+)\)\s*", definition)
        if not match:
            problems.append(f"{name}: variable {variable['name']}: unsupported query {definition!r}")
            continue
        queries.append((f"{name}: variable {variable['name']}",
                        f"count by ({match.group(2)}) ({substitute(match.group(1), variable['name'])})"))
    return queries


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--keys", required=True, help="name=secret,…")
    parser.add_argument("--dashboards", required=True)
    args = parser.parse_args()
    keys = dict(pair.split("=", 1) for pair in args.keys.split(","))
    prom = args.prometheus

    wait("Prometheus to be ready", lambda: http(prom + "/-/ready")[0] == 200)
    wait("Prometheus to scrape tokenctl", lambda: scalar(prom, 'up{job="tokenctl"}') == 1)

    sent = traffic(args.proxy, keys, 1)
    time.sleep(2.5)
    sent += traffic(args.proxy, keys, 2)
    # Every call scraped (the ledger writes its row before the answer, metrics count rows), then
    # a few more scrapes and rule evaluations.
    wait(f"Prometheus to see all {sent} calls",
         lambda: scalar(prom, "sum(tokenctl_requests_total)") == sent, timeout=15)
    time.sleep(2.5)

    problems, results = [], []
    queries = []
    for path in sorted(glob.glob(os.path.join(args.dashboards, "*.json"))):
        queries += dashboard_queries(path, problems)

    _, body = http(prom + "/api/v1/rules")
    groups = json.loads(body)["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    if not rules:
        problems.append("alerts.yaml: Prometheus loaded no rules")
    for rule in rules:
        title = f"alerts.yaml: {rule['name']}"
        if rule.get("health") != "ok":
            problems.append(f"{title}: health {rule.get('health')}: {rule.get('lastError')}")
        count, error = query(prom, rule["query"])
        if error:
            problems.append(f"{title}: {error}")
        queries.append((title + " (threshold as bool)", with_bool(rule["query"])))

    for title, expr in queries:
        count, error = query(prom, expr)
        if error:
            problems.append(f"{title}: {error}\n     {expr}")
        elif not count:
            problems.append(f"{title}: no series\n     {expr}")
        else:
            results.append(f"ok   {title}: {count} series")
    print("\n".join(results))
    if problems:
        print("\n".join("FAIL " + p for p in problems))
        sys.exit(1)
    print(f"ok   {len(queries)} dashboard and alert expressions return data "
          f"({len(rules)} alert rules loaded and healthy; {sent} calls sent)")


if __name__ == "__main__":
    main()
