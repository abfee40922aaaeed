"""Calls tokenctl with the official OpenAI and Anthropic Python SDKs, then checks the ledger.

Run by scripts/sdk-compat.sh (part of `make test`). Prints one line per check and a final
'N passed, N failed' line; exits 1 on any failure.
"""
import argparse
import json
import sqlite3
import subprocess
import sys
import threading
import time
import traceback

import anthropic
import openai

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", required=True)
parser.add_argument("--key", required=True)
parser.add_argument("--db", required=True)
parser.add_argument("--tokenctl", required=True)
parser.add_argument("--paced-key", required=True)
parser.add_argument("--broke-key", required=True)
args = parser.parse_args()

oai = openai.OpenAI(base_url=args.base_url + "/v1", api_key=args.key, max_retries=0)
ant = anthropic.Anthropic(base_url=args.base_url, api_key=args.key, max_retries=0)
request_ids = []  # (x-request-id, route) of calls expected to be recorded as ok
passed = failed = 0


def ledger(sql, params=(), ready=bool, timeout=5.0):
    """The rows of `sql` on the ledger once `ready(rows)`, or after `timeout`: the writer commits
    a call's row up to about 10 ms after its answer (the ledger's journal holds it meanwhile)."""
    deadline = time.time() + timeout
    while True:
        db = sqlite3.connect(args.db)
        try:
            rows = db.execute(sql, params).fetchall()
        finally:
            db.close()
        if ready(rows) or time.time() > deadline:
            return rows
        time.sleep(0.02)


def check(name):
    def run(fn):
        global passed, failed
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception:
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        return fn
    return run


def rid(name):
    value = f"sdk-{name}"
    request_ids.append(value)
    return {"x-request-id": value}


@check("openai chat non-stream")
def _():
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                    extra_headers=rid("chat"))
    assert r.choices[0].message.content, r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage


@check("openai chat stream without include_usage: no usage chunk reaches the client")
def _():
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", stream=True,
                                              messages=[{"role": "user", "content": "hi"}],
                                              extra_headers=rid("chat-stream")))
    assert len(chunks) > 1, chunks
    assert all(c.choices for c in chunks), "a chunk without choices (the injected usage chunk) leaked"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text, chunks


@check("openai chat stream with include_usage: the usage chunk arrives")
def _():
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", stream=True,
                                              stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": "hi"}],
                                              extra_headers=rid("chat-stream-usage")))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0, chunks[-1]


@check("openai responses non-stream and stream")
def _():
    r = oai.responses.create(model="gpt-4o-mini", input="hi", extra_headers=rid("responses"))
    assert r.output_text, r
    assert r.usage.input_tokens > 0, r.usage
    events = list(oai.responses.create(model="gpt-4o-mini", input="hi", stream=True,
                                       extra_headers=rid("responses-stream")))
    assert events[-1].type == "response.completed", events[-1]


@check("openai embeddings")
def _():
    r = oai.embeddings.create(model="text-embedding-3-small", input="hello", extra_headers=rid("embeddings"))
    assert r.data and r.usage.prompt_tokens > 0, r


@check("openai models list")
def _():
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o-mini" in ids, ids


@check("anthropic messages non-stream")
def _():
    m = ant.messages.create(model="claude-haiku-4-5", max_tokens=64,
                            messages=[{"role": "user", "content": "hi"}], extra_headers=rid("messages"))
    assert m.content[0].text and m.usage.output_tokens > 0, m


@check("anthropic messages stream")
def _():
    with ant.messages.stream(model="claude-haiku-4-5", max_tokens=64,
                             messages=[{"role": "user", "content": "hi"}],
                             extra_headers=rid("messages-stream")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.usage.output_tokens > 0, final


@check("openai chat with an input_audio part and an audio answer asked: admitted and recorded")
def _():
    import base64, io, wave
    sound = io.BytesIO()
    with wave.open(sound, "wb") as w:  # one second of 16-bit 24 kHz silence
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(b"\x00\x00" * 24000)
    data = base64.b64encode(sound.getvalue()).decode()
    r = oai.chat.completions.create(
        model="gpt-audio", modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"},
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is said?"},
                                               {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]}],
        extra_headers=rid("chat-audio"))
    assert r.usage.prompt_tokens > 0, r.usage


@check("anthropic messages with a web search tool (max_uses): admitted and recorded")
def _():
    m = ant.messages.create(model="claude-haiku-4-5", max_tokens=64,
                            messages=[{"role": "user", "content": "news?"}],
                            tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
                            extra_headers=rid("messages-search"))
    assert m.usage.output_tokens > 0, m


@check("streamed searches (Responses web and file search items, Anthropic server_tool_use and results) parse and are billed")
def _():
    events = list(oai.responses.create(
        model="gpt-4o", input="news?", stream=True, extra_headers=rid("responses-searches"),
        tools=[{"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]))
    kinds = [e.type for e in events]
    assert kinds.count("response.web_search_call.completed") == 2, kinds
    assert kinds.count("response.file_search_call.completed") == 1, kinds
    final = events[-1].response
    assert [o.type for o in final.output] == ["web_search_call", "web_search_call", "file_search_call", "message"], final.output
    with ant.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "news?"}],
                             tools=[{"type": "web_search_20250305", "name": "web_search"}],
                             extra_headers=rid("messages-searches")) as stream:
        message = stream.get_final_message()
    assert [b.type for b in message.content] == ["server_tool_use", "web_search_tool_result"] * 2 + ["text"], message.content
    assert message.content[0].input == {"query": "fake"}, message.content[0]
    assert message.usage.server_tool_use.web_search_requests == 2, message.usage
    for request_id, web, files in (("sdk-responses-searches", 2, 1), ("sdk-messages-searches", 2, 0)):
        rows = ledger("SELECT web_searches, file_searches FROM calls WHERE request_id = ?", (request_id,))
        assert rows == [(web, files)], (request_id, rows)


@check("anthropic messages run in the US only (inference_geo): charged the US-only price")
def _():
    m = ant.messages.create(model="claude-opus-4-6", max_tokens=64, inference_geo="us",
                            messages=[{"role": "user", "content": "hi"}], extra_headers=rid("messages-us-only"))
    assert m.usage.inference_geo == "us", m.usage
    rows = ledger("SELECT price_id, price_input, cost_pd, input_tokens, output_tokens FROM calls WHERE request_id = ?",
                  ("sdk-messages-us-only",))
    assert rows, "no row"
    price_id, price_input, cost, tokens_in, tokens_out = rows[0]
    assert price_id == "claude-opus-4-6 us-only@2025-11-01", price_id
    assert price_input == 5_500_000 and cost == tokens_in * 5_500_000 + tokens_out * 27_500_000, rows


@check("openai SDK surfaces a bad key as AuthenticationError")
def _():
    bad = openai.OpenAI(base_url=args.base_url + "/v1", api_key="tk-wrong", max_retries=0)
    try:
        bad.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("no error")


@check("anthropic SDK surfaces a bad key as AuthenticationError")
def _():
    bad = anthropic.Anthropic(base_url=args.base_url, api_key="tk-wrong", max_retries=0)
    try:
        bad.messages.create(model="claude-haiku-4-5", max_tokens=8,
                            messages=[{"role": "user", "content": "hi"}])
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("no error")


@check("openai SDK surfaces an unrouted model as NotFoundError")
def _():
    try:
        oai.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    except openai.NotFoundError as e:
        assert "no-such-model" in str(e), e
    else:
        raise AssertionError("no error")


@check("openai SDK: a 429 (one call at a time) is retried after retry-after and then succeeds")
def _():
    client = openai.OpenAI(base_url=args.base_url + "/v1", api_key=args.paced_key, max_retries=2)
    ask = dict(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    first = threading.Thread(target=lambda: client.chat.completions.create(**ask))
    first.start()
    time.sleep(0.3)  # the first call is now in flight at the slow provider
    second = client.chat.completions.with_raw_response.create(**ask)
    first.join()
    assert second.http_response.status_code == 200, second.http_response.status_code
    outcomes = [r[0] for r in ledger("SELECT outcome FROM calls WHERE user = 'sdk-paced'",
                                      ready=lambda rows: [r[0] for r in rows].count("ok") >= 2)]
    assert outcomes.count("ok") == 2 and outcomes.count("refused_concurrency") >= 1, outcomes


@check("openai SDK: an exhausted quota fails at once with insufficient_quota, one HTTP request")
def _():
    client = openai.OpenAI(base_url=args.base_url + "/v1", api_key=args.broke_key, max_retries=2)
    try:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.RateLimitError as e:
        assert e.code == "insufficient_quota", e.code
        assert "monthly" in str(e), str(e)
    else:
        raise AssertionError("no error")
    rows = ledger("SELECT outcome FROM calls WHERE user = 'sdk-broke'")
    assert rows == [("refused_quota",)], rows


@check("every successful SDK call has a committed ledger row with usage and cost")
def _():
    for request_id in request_ids:
        rows = ledger("SELECT outcome, input_tokens + cached_input_tokens + cache_write_tokens, "
                      "output_tokens, cost_pd, user FROM calls WHERE request_id = ?", (request_id,))
        assert rows, f"no row for {request_id}"
        row = rows[0]
        outcome, input_tokens, output_tokens, cost, user = row
        assert outcome == "ok" and user == "sdk-alice", (request_id, row)
        assert input_tokens > 0 and cost > 0, (request_id, row)
    refused = ledger("SELECT count(*) FROM calls WHERE outcome LIKE 'refused_%'")[0][0]
    assert refused >= 3, refused


@check("tokenctl report --format json totals (cost, requests, searches) equal the ledger's sums")
def _():
    out = subprocess.run([args.tokenctl, "report", "--db", args.db, "--by", "user", "--format", "json"],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    db = sqlite3.connect(args.db)
    total = db.execute("SELECT sum(cost_pd), count(*), sum(web_searches), sum(file_searches) FROM calls").fetchone()
    assert int(report["totals"]["cost_picodollars"]) == total[0], (report["totals"], total)
    assert report["totals"]["requests"] == total[1], (report["totals"], total)
    # The search checks above made both kinds: the report counts them as the ledger does.
    assert total[2] > 0 and total[3] > 0, total
    assert [report["totals"]["web_searches"], report["totals"]["file_searches"]] == list(total[2:]), (report["totals"], total)


print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
