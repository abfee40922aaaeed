/// `GET /dashboard`: one self-contained page (inline CSS and JS, charts drawn as inline SVG, no
/// network but its own `/admin/api/…`). The page itself holds no data, so it is served to anyone;
/// it asks for an admin key once (or takes it from a `#key=` fragment, which browsers never send
/// to a server, and then wipes it from the address bar), keeps it in `sessionStorage` (gone when
/// the tab closes) and sends it as `Authorization: Bearer` with every API call.
enum DashboardPage {
    /// Only inline code and calls to this origin: even a label that slipped past escaping could
    /// neither load nor send anything elsewhere.
    static let headers: [(String, String)] = [
        ("content-type", "text/html; charset=utf-8"),
        ("content-security-policy",
         "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ]

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenctl dashboard</title>
<style>
:root { --fg:#1d232b; --muted:#68717d; --line:#e3e6ea; --bg:#f5f6f8; --card:#fff; --bad:#c8372d; --ok:#2f8a4c; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; gap:16px; padding:12px 24px; background:#1d232b; color:#fff; }
header h1 { font-size:18px; margin:0; font-weight:600; }
header .spacer { flex:1; }
header select, header button { font:inherit; padding:4px 8px; border-radius:4px; border:1px solid #56606c; background:#2a323c; color:#fff; }
#status { color:#b8c0ca; font-size:12px; }
main { padding:16px 24px 32px; max-width:1280px; margin:0 auto; }
h2 { font-size:15px; margin:20px 0 8px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
.tiles { display:grid; grid-template-columns:repeat(auto-fill, minmax(140px, 1fr)); gap:10px; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.tile .label { color:var(--muted); font-size:12px; }
.tile .value { font-size:20px; font-weight:600; margin-top:2px; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.tile .sub { color:var(--muted); font-size:12px; }
.grid { display:grid; grid-template-columns:1fr 1fr; gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:12px; min-width:0; }
.card.wide { grid-column:1 / -1; }
.card h3 { margin:0 0 8px; font-size:14px; font-weight:600; }
.card .note { color:var(--muted); font-size:12px; margin-top:4px; }
svg text { font:11px system-ui, sans-serif; fill:#4a525c; }
.legend { display:flex; flex-wrap:wrap; gap:10px; font-size:12px; margin-top:6px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:4px; border-radius:2px; vertical-align:-1px; }
.empty { color:var(--muted); padding:16px 0; }
#login { max-width:420px; margin:80px auto; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:24px; }
#login input { width:100%; font:inherit; padding:8px; margin:8px 0; border:1px solid var(--line); border-radius:4px; }
#login button { font:inherit; padding:8px 14px; }
#login .error { color:var(--bad); min-height:1.4em; }
.bad { color:var(--bad); }
.okc { color:var(--ok); }
</style>
</head>
<body>
<header>
  <h1>tokenctl</h1>
  <label>period
    <select id="period">
      <option value="7d">last 7 days</option>
      <option value="14d" selected>last 14 days</option>
      <option value="30d">last 30 days</option>
      <option value="90d">last 90 days</option>
      <option value="mtd">month to date</option>
    </select>
  </label>
  <button id="refresh" type="button">Refresh</button>
  <span class="spacer"></span>
  <span id="status"></span>
  <button id="signout" type="button">Forget key</button>
</header>
<div id="login" hidden>
  <h3>Admin key</h3>
  <p>The dashboard reads the admin API with an admin key (<code>tokenctl keys create --admin --user NAME</code>). It is kept in this tab only.</p>
  <form id="loginform"><input id="keyinput" type="password" autocomplete="off" placeholder="tk-…"><button type="submit">Open dashboard</button></form>
  <div class="error" id="loginerror"></div>
</div>
<main id="main" hidden>
  <h2>Health · last hour</h2>
  <div class="tiles" id="healthtiles"></div>
  <div class="grid" style="margin-top:12px">
    <div class="card wide"><h3>Calls per minute</h3><div id="minutes"></div></div>
  </div>
  <h2>Spend · <span id="periodlabel"></span></h2>
  <div class="tiles" id="spendtiles"></div>
  <div class="grid" style="margin-top:12px">
    <div class="card wide"><h3>Cost per day, by user</h3><div id="daily"></div></div>
    <div class="card"><h3>Top users</h3><div id="users"></div></div>
    <div class="card"><h3>Cost by model</h3><div id="models"></div></div>
    <div class="card"><h3>Cost by team</h3><div id="teams"></div></div>
    <div class="card"><h3>Daily cost per active user</h3><div id="peruser"></div></div>
    <div class="card wide"><h3>Budget use (current periods)</h3><div id="budgets"></div></div>
  </div>
</main>
<script>
"use strict";
const KEY = "tokenctl-admin-key";
const COLORS = ["#3566c8", "#e08a2c", "#2f9a6a", "#b8458f", "#7a5cc8", "#9aa3ad"];
const $ = id => document.getElementById(id);

(function takeKeyFromFragment() {
  const m = /(?:^#|&)key=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function usd(text) {
  const v = Number(text);
  if (!isFinite(v)) return "–";
  return "$" + v.toLocaleString("en-US", {minimumFractionDigits: v >= 100 ? 2 : 4, maximumFractionDigits: v >= 100 ? 2 : 4});
}
function num(v) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"); }
function ms(v) { return v === null || v === undefined ? "–" : (v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms"); }
function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(v < 0.1 ? 2 : 1) + " %"; }

class Unauthorised extends Error {}

async function api(path) {
  const key = sessionStorage.getItem(KEY);
  const response = await fetch(path, {headers: {"Authorization": "Bearer " + key}, cache: "no-store"});
  const body = await response.json().catch(() => null);
  if (response.status === 401 || response.status === 403) {
    throw new Unauthorised(body && body.error ? body.error.message : "refused (" + response.status + ")");
  }
  if (!response.ok) throw new Error(body && body.error ? body.error.message : path + ": HTTP " + response.status);
  return body;
}

function tile(label, value, sub, cls) {
  return '<div class="tile"><div class="label">' + esc(label) + '</div><div class="value ' + (cls || "") + '" title="' +
    esc(value) + '">' + esc(value) + '</div><div class="sub">' + esc(sub || "") + '</div></div>';
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// Vertical bars, stacked by series: labels[i] on the x axis, series[j].values[i] stacked.
function stackedBars(labels, series, fmt, opts) {
  opts = opts || {};
  if (!labels.length) return '<div class="empty">No calls in this period.</div>';
  const W = opts.width || 1180, H = opts.height || 220, L = 64, B = 30, T = 10, R = 8;
  const totals = labels.map((_, i) => series.reduce((s, x) => s + (x.values[i] || 0), 0));
  const max = niceMax(Math.max.apply(null, totals));
  const bw = (W - L - R) / labels.length;
  let svg = '<svg viewBox="0 0 ' + W + ' ' + H + '" width="100%" role="img">';
  for (let g = 0; g <= 4; g++) {
    const y = T + (H - T - B) * (1 - g / 4);
    svg += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y + '" y2="' + y + '" stroke="#e3e6ea"/>';
    svg += '<text x="' + (L - 6) + '" y="' + (y + 4) + '" text-anchor="end">' + esc(fmt(max * g / 4)) + '</text>';
  }
  const every = Math.ceil(labels.length / (opts.maxLabels || 16));
  labels.forEach((label, i) => {
    let y = H - B;
    const x = L + i * bw + bw * 0.12;
    series.forEach(s => {
      const v = s.values[i] || 0;
      const h = (H - T - B) * v / max;
      if (h > 0) {
        svg += '<rect x="' + x.toFixed(1) + '" y="' + (y - h).toFixed(1) + '" width="' + (bw * 0.76).toFixed(1) +
          '" height="' + h.toFixed(1) + '" fill="' + s.color + '"><title>' + esc(label + " · " + s.name + ": " + fmt(v)) + '</title></rect>';
        y -= h;
      }
    });
    if (i % every === 0) {
      svg += '<text x="' + (L + i * bw + bw / 2).toFixed(1) + '" y="' + (H - B + 16) + '" text-anchor="middle">' + esc(opts.short ? opts.short(label) : label) + '</text>';
    }
  });
  svg += '</svg>';
  if (series.length > 1) {
    svg += '<div class="legend">' + series.map(s => '<span><i style="background:' + s.color + '"></i>' + esc(s.name) + '</span>').join("") + '</div>';
  }
  return svg;
}

// Horizontal bars: one per item, value label at the end.
function hbars(items, fmt, opts) {
  opts = opts || {};
  if (!items.length) return '<div class="empty">' + esc(opts.empty || "No calls in this period.") + '</div>';
  const W = opts.width || 560, row = 22, L = 150, R = 130, H = items.length * row + 4;
  const max = opts.max || Math.max.apply(null, items.map(i => i.value)) || 1;
  let svg = '<svg viewBox="0 0 ' + W + ' ' + H + '" width="100%" role="img">';
  items.forEach((item, i) => {
    const y = 2 + i * row;
    const w = Math.max(1, (W - L - R) * Math.min(item.value, max) / max);
    const name = item.name.length > 22 ? item.name.slice(0, 21) + "…" : item.name;
    svg += '<text x="' + (L - 8) + '" y="' + (y + 14) + '" text-anchor="end">' + esc(name) + '</text>';
    svg += '<rect x="' + L + '" y="' + (y + 3) + '" width="' + w.toFixed(1) + '" height="' + (row - 8) + '" rx="2" fill="' + (item.color || COLORS[0]) + '"><title>' + esc(item.name + ": " + fmt(item.value)) + '</title></rect>';
    svg += '<text x="' + (L + w + 6).toFixed(1) + '" y="' + (y + 14) + '">' + esc(item.label || fmt(item.value)) + '</text>';
  });
  return svg + '</svg>';
}

// Every day of the period, so quiet days show as gaps: the report's own day labels (in its time
// zone) plus the calendar days between its bounds.
function daysOf(report) {
  const days = new Set(report.rows.map(r => r.day));
  const end = new Date(report.until);
  for (let d = new Date(report.since.slice(0, 10) + "T00:00:00Z"); d < end && days.size < 400; d = new Date(d.getTime() + 86400000)) {
    days.add(d.toISOString().slice(0, 10));
  }
  return Array.from(days).sort();
}

function renderHealth(h) {
  const last = h.last_hour;
  const reloadCls = h.policy.reload_errors > 0 ? "bad" : "";
  $("healthtiles").innerHTML =
    tile("Calls", num(last.requests), num(last.refused) + " refused") +
    tile("Error rate", pct(last.error_rate), num(last.errors) + " errors", last.error_rate > 0.05 ? "bad" : "") +
    tile("Latency p50", ms(last.latency_p50_ms), "p95 " + ms(last.latency_p95_ms) + ", mean " + ms(last.latency_mean_ms) + ", whole call") +
    tile("TTFT p50", ms(last.ttft_p50_ms), "time to first byte") +
    tile("In flight", num(h.calls_in_flight), num(h.open_reservations) + " quota reservations") +
    tile("Ledger backlog", num(h.ledger_backlog), "rows waiting to commit", h.ledger_backlog > 1000 ? "bad" : "") +
    tile("Policy", h.policy.version, h.policy.reload_errors + " reload errors" + (h.policy.last_reload_error ? ": " + h.policy.last_reload_error : ""), reloadCls) +
    tile("Spend", usd(last.cost_usd), "last hour");
  // One slot per minute of the hour, oldest first.
  const end = Math.floor(Date.parse(h.now) / 60000) * 60000;
  const byMinute = new Map(h.per_minute.map(m => [Date.parse(m.minute), m]));
  const labels = [], ok = [], refused = [], errors = [];
  for (let t = end - 59 * 60000; t <= end; t += 60000) {
    const m = byMinute.get(t);
    labels.push(new Date(t).toISOString().slice(11, 16));
    errors.push(m ? m.errors : 0);
    refused.push(m ? m.refused : 0);
    ok.push(m ? m.requests - m.errors - m.refused : 0);
  }
  const any = h.per_minute.length > 0;
  $("minutes").innerHTML = any ? stackedBars(labels, [
    {name: "served", color: COLORS[0], values: ok},
    {name: "refused", color: "#e0b34c", values: refused},
    {name: "errors", color: "#c8372d", values: errors}], v => Math.round(v), {height: 140, maxLabels: 12}) +
    '<div class="note">UTC minutes; errors are provider or transit failures, refusals are the gateway\'s own answers.</div>'
    : '<div class="empty">No calls in the last hour.</div>';
  // Budgets.
  $("budgets").innerHTML = hbars(h.budgets.map(b => ({
    name: b.scope + (b.name ? " " + b.name : "") + " · " + b.period,
    value: b.used_share,
    color: b.used_share >= 1 ? "#c8372d" : b.used_share >= 0.8 ? "#e08a2c" : COLORS[2],
    label: pct(b.used_share) + (b.limit_usd ? " of " + usd(b.limit_usd) : " of " + num(b.limit_tokens) + " tok"),
  })), pct, {max: 1, width: 1180, empty: "No budgets in plans.yaml apply to the current keys."});
}

function renderSpend(byDay, topUserDays, byUser, byTeam, byModel) {
  const t = byDay.totals, s = byDay.summary;
  const days = daysOf(byDay);
  $("periodlabel").textContent = byDay.since.slice(0, 10) + " to " + byDay.until.slice(0, 16).replace("T", " ") + " " + byDay.time_zone;
  // Every figure below comes from the report's summary (the same as `tokenctl report`): a user is
  // active on a day if a call of theirs that day was not refused; daily cost per active user is that day's cost
  // over its active users, and the period figure the mean of those days.
  const costByDay = new Map(byDay.rows.map(r => [r.day, Number(r.cost_usd)]));
  const perDay = new Map(s.days.map(d => [d.day, d.cost_per_active_user_usd === null ? 0 : Number(d.cost_per_active_user_usd)]));
  const perUserDay = days.map(d => perDay.get(d) || 0);
  const activeDays = s.days.filter(d => d.active_users > 0).length;
  const forecast = s.forecast ? usd(s.forecast.projected_usd) : "–";
  $("spendtiles").innerHTML =
    tile("Total cost", usd(t.cost_usd), "exact: $" + t.cost_usd) +
    tile("Requests", num(t.requests), num(t.refused) + " refused, " + num(t.errors) + " errors") +
    tile("Active users", num(s.active_users), "a call not refused") +
    tile("Daily cost per active user", s.daily_cost_per_active_user_mean_usd === null ? "–" : usd(s.daily_cost_per_active_user_mean_usd),
         "mean over " + activeDays + (activeDays === 1 ? " active day" : " active days")) +
    tile("Retry share", usd(s.retries.cost_usd),
         num(s.retries.count) + " retries, " + (s.retries.share_of_cost_pct === null ? "–" : s.retries.share_of_cost_pct + " %") + " of cost") +
    tile("Burn rate", s.burn_rate.cost_per_hour_usd === null ? "–" : usd(s.burn_rate.cost_per_hour_usd) + "/h",
         (s.burn_rate.tokens_per_hour === null ? "–" : num(s.burn_rate.tokens_per_hour)) + " tokens/h") +
    tile("Month-end forecast", forecast, s.forecast ? "at the current burn rate, " + s.forecast.month : "") +
    tile("Tokens", num(t.input_tokens + t.output_tokens), num(t.input_tokens) + " in · " + num(t.output_tokens) + " out");
  // Cost per day stacked by the five costliest users (each user's days a report of their own:
  // one report by day and user would fold most of their days into "(others)" past its top rows
  // with thousands of users); the rest, and calls without a user, as "others".
  const series = topUserDays.map((r, j) => ({name: r.user, color: COLORS[j], values: days.map(d => {
    const row = r.report.rows.find(x => x.day === d);
    return row ? Number(row.cost_usd) : 0;
  })}));
  const others = days.map((d, i) => Math.max(0, (costByDay.get(d) || 0) - series.reduce((s, x) => s + x.values[i], 0)));
  if (others.some(v => v > 1e-9)) series.push({name: "others", color: COLORS[5], values: others});
  const moneyAxis = v => v === 0 ? "$0" : "$" + (v >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3))));
  $("daily").innerHTML = stackedBars(days, series, moneyAxis, {height: 190, short: d => d.slice(5)});
  $("peruser").innerHTML = stackedBars(days, [{name: "per active user", color: COLORS[4], values: perUserDay}], moneyAxis,
    {width: 560, height: 200, maxLabels: 7, short: d => d.slice(5)}) + '<div class="note">That day\'s cost divided by its users with a call that day.</div>';
  // The ten costliest; groups that cost nothing (only refusals) are left out.
  const bars = (rows, dim) => rows.filter(r => Number(r.cost_usd) > 0).slice(0, 10).map((r, i) => ({name: r[dim],
    value: Number(r.cost_usd), color: COLORS[i % 5], label: usd(r.cost_usd) + " · " + num(r.requests) + (r.requests === 1 ? " call" : " calls")}));
  $("users").innerHTML = hbars(bars(byUser.rows, "user"), usd);
  $("teams").innerHTML = hbars(bars(byTeam.rows, "team"), usd);
  $("models").innerHTML = hbars(bars(byModel.rows, "model"), usd);
}

async function load() {
  if (!sessionStorage.getItem(KEY)) return showLogin("");
  $("status").textContent = "loading…";
  const since = "since=" + encodeURIComponent($("period").value);
  try {
    // The budgets are health's; the summary's would repeat them (megabytes with thousands of users).
    const [health, byDay, byUser, byTeam, byModel] = await Promise.all([
      api("/admin/api/health"),
      api("/admin/api/report?" + since + "&by=day&summary=true&budgets=false"),
      api("/admin/api/report?" + since + "&by=user&top=10"),
      api("/admin/api/report?" + since + "&by=team"),
      api("/admin/api/report?" + since + "&by=model"),
    ]);
    const topUsers = byUser.rows.filter(r => r.user !== "(others)" && Number(r.cost_usd) > 0).slice(0, 5).map(r => r.user);
    const topUserDays = await Promise.all(topUsers.map(async u =>
      ({user: u, report: await api("/admin/api/report?" + since + "&by=day&user=" + encodeURIComponent(u))})));
    $("login").hidden = true;
    $("main").hidden = false;
    renderHealth(health);
    renderSpend(byDay, topUserDays, byUser, byTeam, byModel);
    $("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC · policy " + health.policy.version;
  } catch (e) {
    if (e instanceof Unauthorised) {
      sessionStorage.removeItem(KEY);
      return showLogin(e.message);
    }
    $("status").innerHTML = '<span class="bad">' + esc(e.message) + '</span>';
  }
}

function showLogin(message) {
  $("main").hidden = true;
  $("login").hidden = false;
  $("loginerror").textContent = message;
  $("status").textContent = "";
}

$("loginform").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $("keyinput").value.trim());
  $("keyinput").value = "";
  load();
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(KEY); showLogin(""); });
$("refresh").addEventListener("click", load);
$("period").addEventListener("change", load);
setInterval(() => { if (!$("main").hidden) load(); }, 30000);
load();
</script>
</body>
</html>
"""#
}
