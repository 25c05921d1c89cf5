// Dashboard: KPI cards, charts and tables from one GET /api/stats per refresh.
// The shell is server-rendered; data is fetched after first paint.
import {
  $, api, clear, el, errorRateClass, fmtInt, fmtMs, fmtPercent, fmtTime, phrase, rangeControls,
  rangeParams, responseTimeClass, suggest, toast,
} from "./common.js";

const REFRESH_MS = 30_000;
const Chart = window.Chart;
const params = new URLSearchParams(location.search);
const state = {
  range: params.get("range") || (params.get("from") ? "custom" : "24h"),
  from: params.get("from") || "",
  to: params.get("to") || "",
  service: params.get("service") || "",
  tenant_id: params.get("tenant_id") || "",
  refresh: params.get("refresh") === "1",
};

const form = $("#dash-filters");
const readRange = rangeControls(state);
const serviceInput = $("#f-service");
const tenantInput = $("#f-tenant");
const refreshBox = $("#auto-refresh");
const statusLine = $("#dash-status");
serviceInput.value = state.service;
tenantInput.value = state.tenant_id;
refreshBox.checked = state.refresh;
suggest(serviceInput, "service");
suggest(tenantInput, "tenant_id");

/** The API filters of the current state (also used for /search links). */
function apiFilters() {
  const out = new URLSearchParams();
  const { from, to } = rangeParams(state.range, state.from, state.to);
  if (from) out.set("from", from);
  if (to) out.set("to", to);
  if (state.service) out.set("service", state.service);
  if (state.tenant_id) out.set("tenant_id", state.tenant_id);
  return out;
}

/** A /search URL with the dashboard's scope plus `extra` ([key, value] pairs). */
function searchUrl(extra, { keepRange = true } = {}) {
  const out = new URLSearchParams();
  if (keepRange) {
    out.set("range", state.range);
    if (state.range === "custom") {
      if (state.from) out.set("from", state.from);
      if (state.to) out.set("to", state.to);
    }
  }
  if (state.service) out.set("service", state.service);
  if (state.tenant_id) out.set("tenant_id", state.tenant_id);
  for (const [key, value] of extra) {
    if (key === "service" || key === "from" || key === "to" || key === "range") out.delete(key);
    out.append(key, value);
  }
  return "/search?" + out.toString();
}

function writeUrl() {
  const out = new URLSearchParams();
  out.set("range", state.range);
  if (state.range === "custom") {
    if (state.from) out.set("from", state.from);
    if (state.to) out.set("to", state.to);
  }
  if (state.service) out.set("service", state.service);
  if (state.tenant_id) out.set("tenant_id", state.tenant_id);
  if (state.refresh) out.set("refresh", "1");
  history.replaceState(null, "", "?" + out.toString());
}

// --- KPIs ---------------------------------------------------------------------------

function setKpi(id, text, raw, level) {
  const card = document.getElementById(id);
  card.classList.remove("good", "warn", "bad");
  if (level) card.classList.add(level);
  const value = card.querySelector(".kpi-value");
  value.textContent = text;
  value.dataset.value = raw === null || raw === undefined ? "" : String(raw);
}

function renderKpis(stats) {
  setKpi("kpi-total", fmtInt(stats.total_logs), stats.total_logs, "");
  setKpi("kpi-error-rate", fmtPercent(stats.error_rate), stats.error_rate,
    stats.total_logs ? errorRateClass(stats.error_rate) : "");
  setKpi("kpi-server-error-rate", fmtPercent(stats.server_error_rate), stats.server_error_rate,
    stats.total_logs ? errorRateClass(stats.server_error_rate) : "");
  setKpi("kpi-avg-rt", fmtMs(stats.avg_response_time_ms), stats.avg_response_time_ms,
    responseTimeClass(stats.avg_response_time_ms));
  setKpi("kpi-p95-rt", fmtMs(stats.p95_response_time_ms), stats.p95_response_time_ms,
    responseTimeClass(stats.p95_response_time_ms));
  setKpi("kpi-active-users", fmtInt(stats.active_users), stats.active_users, "");
}

// --- charts -------------------------------------------------------------------------

const COLORS = {
  events: "#4c78a8", errors: "#d62728", good: "#2ca02c", warn: "#e6a100", bad: "#d62728",
  palette: ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac"],
};
const charts = {};
const LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const LEVEL_COLORS = { DEBUG: "#9e9e9e", INFO: "#4c78a8", WARNING: "#e6a100", ERROR: "#d62728", CRITICAL: "#7b1fa2" };
const PERCENTILES = [
  ["p50_response_time_ms", "p50", "#54a24b"],
  ["p95_response_time_ms", "p95", "#f58518"],
  ["p99_response_time_ms", "p99", "#d62728"],
];

function statusColor(code) {
  const n = Number(code);
  if (n >= 500) return "#d62728";
  if (n >= 400) return "#e6a100";
  if (n >= 300) return "#72b7b2";
  return "#2ca02c";
}

function makeCharts() {
  if (!Chart) return;
  Chart.defaults.animation = { duration: 250 };
  Chart.defaults.maintainAspectRatio = false;
  charts.events = new Chart($("#chart-events"), {
    type: "bar",
    data: { labels: [], datasets: LEVELS.map((level) => (
      { label: level, data: [], backgroundColor: LEVEL_COLORS[level], stack: "s" }
    )) },
    options: {
      scales: { x: { stacked: true, ticks: { maxTicksLimit: 12 } }, y: { stacked: true, beginAtZero: true } },
      onClick: (_event, elements) => {
        if (!elements.length) return;
        const bucket = charts.events.$buckets[elements[0].index];
        if (!bucket) return;
        const start = new Date(bucket.timestamp);
        const end = new Date(start.getTime() + (charts.events.$interval || 0));
        const extra = [["range", "custom"], ["from", start.toISOString()], ["to", end.toISOString()]];
        extra.push(["level", LEVELS[elements[0].datasetIndex]]);
        location.assign(searchUrl(extra));
      },
    },
  });
  charts.latency = new Chart($("#chart-latency"), {
    type: "line",
    data: { labels: [], datasets: PERCENTILES.map(([key, label, color]) => (
      { label, data: [], borderColor: color, backgroundColor: color, pointRadius: 0, spanGaps: true, $key: key }
    )) },
    options: { scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, title: { display: true, text: "ms" } } } },
  });
  charts.services = new Chart($("#chart-services"), {
    type: "bar",
    data: { labels: [], datasets: [{ label: "error rate %", data: [], backgroundColor: [] }] },
    options: {
      indexAxis: "y",
      plugins: { legend: { display: false } },
      scales: { x: { beginAtZero: true, ticks: { callback: (v) => v + "%" } } },
      onClick: (_event, elements) => {
        if (!elements.length) return;
        const service = charts.services.data.labels[elements[0].index];
        location.assign(searchUrl([["service", service], ["level", "ERROR"], ["level", "CRITICAL"]]));
      },
    },
  });
  charts.status = new Chart($("#chart-status"), {
    type: "doughnut",
    data: { labels: [], datasets: [{ data: [], backgroundColor: [] }] },
    options: {
      plugins: { legend: { position: "right" } },
      onClick: (_event, elements) => {
        if (!elements.length) return;
        const code = charts.status.data.labels[elements[0].index];
        location.assign(searchUrl([["status_code", code]]));
      },
    },
  });
}

function shortTime(iso, intervalMs) {
  const text = fmtTime(iso);
  return intervalMs >= 86_400_000 ? text.slice(0, 10) : text.slice(5, 16);
}

function renderCharts(stats) {
  if (!Chart) return;
  const buckets = stats.events_over_time || [];
  charts.events.$buckets = buckets;
  charts.events.$interval = stats.interval_ms;
  const labels = buckets.map((b) => shortTime(b.timestamp, stats.interval_ms));
  charts.events.data.labels = labels;
  LEVELS.forEach((level, i) => {
    charts.events.data.datasets[i].data = buckets.map((b) => (b.levels || {})[level] || 0);
  });
  charts.events.update();

  charts.latency.data.labels = labels;
  for (const dataset of charts.latency.data.datasets) {
    dataset.data = buckets.map((b) => (b[dataset.$key] === null || b[dataset.$key] === undefined ? null : b[dataset.$key]));
  }
  charts.latency.update();

  const services = (stats.error_rate_by_service || []).slice(0, 15);
  charts.services.data.labels = services.map((s) => s.service);
  charts.services.data.datasets[0].data = services.map((s) => +(s.error_rate * 100).toFixed(2));
  charts.services.data.datasets[0].backgroundColor = services.map((s) => COLORS[errorRateClass(s.error_rate)]);
  charts.services.update();

  const codes = Object.entries(stats.status_codes || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
  charts.status.data.labels = codes.map(([code]) => code);
  charts.status.data.datasets[0].data = codes.map(([, n]) => n);
  charts.status.data.datasets[0].backgroundColor = codes.map(([code]) => statusColor(code));
  charts.status.update();
}

// --- tables ---------------------------------------------------------------------------

function renderTables(stats) {
  const slowest = clear($("#slowest-body"));
  for (const row of stats.slowest_endpoints || []) {
    slowest.append(el("tr", {},
      el("td", {}, el("a", { href: searchUrl([["endpoint", row.endpoint], ["sort", "response_time_ms"]]) }, row.endpoint)),
      el("td", { class: "num" }, fmtInt(row.count)),
      el("td", { class: `num ${responseTimeClass(row.avg_response_time_ms)}` }, fmtMs(row.avg_response_time_ms)),
      el("td", { class: `num ${responseTimeClass(row.p95_response_time_ms)}` }, fmtMs(row.p95_response_time_ms)),
    ));
  }
  if (!slowest.firstChild) slowest.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No response times.")));

  const errors = clear($("#top-errors-body"));
  for (const row of stats.top_errors || []) {
    errors.append(el("tr", {},
      el("td", { class: "message-cell" },
        el("a", { href: searchUrl([["q", phrase(row.message)], ["level", "ERROR"], ["level", "CRITICAL"]]) }, row.message)),
      el("td", { class: "num" }, fmtInt(row.count)),
    ));
  }
  if (!errors.firstChild) errors.append(el("tr", {}, el("td", { colspan: 2, class: "muted" }, "No errors.")));
}

// --- loading ------------------------------------------------------------------------

let inflight = null;
async function load() {
  if (inflight) inflight.abort();
  inflight = new AbortController();
  statusLine.textContent = "Loading…";
  try {
    const stats = await api("/api/stats?" + apiFilters().toString(), { signal: inflight.signal });
    renderKpis(stats);
    renderCharts(stats);
    renderTables(stats);
    $("#empty-state").hidden = stats.total_logs !== 0;
    statusLine.textContent = `Updated ${fmtTime(new Date().toISOString()).slice(11, 19)} UTC · `
      + `${fmtInt(stats.total_logs)} events · buckets of ${Math.round(stats.interval_ms / 1000)} s`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    if (error.name === "AbortError") return;
    statusLine.textContent = `Could not load the statistics: ${error.message}`;
  }
}

let timer = 0;
function schedule() {
  clearInterval(timer);
  if (state.refresh) timer = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  Object.assign(state, readRange(), { service: serviceInput.value.trim(), tenant_id: tenantInput.value.trim() });
  writeUrl();
  load();
});
refreshBox.addEventListener("change", () => {
  state.refresh = refreshBox.checked;
  writeUrl();
  schedule();
});

const demo = document.getElementById("demo-data");
if (demo) {
  demo.addEventListener("click", async () => {
    demo.disabled = true;
    $("#demo-status").textContent = "Loading demo data…";
    try {
      const result = await api("/api/demo-data", { method: "POST", body: {} });
      const count = result && result.published;
      $("#demo-status").textContent = count !== undefined ? `Queued ${fmtInt(count)} demo events.` : "Demo data queued.";
      setTimeout(load, 2000);
    } catch (error) {
      $("#demo-status").textContent = "";
      toast(`Demo data failed: ${error.message}`, "error");
    } finally {
      demo.disabled = false;
    }
  });
}

makeCharts();
writeUrl();
schedule();
load();
