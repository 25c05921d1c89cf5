// Search: the whole state lives in the URL (shareable); results 50 at a time by cursor.
import {
  $, $$, ApiError, api, clear, confirmButton, el, fmtInt, fmtTime, levelBadge, messageNode, rangeControls,
  rangeParams, responseTimeClass, suggest, toast,
} from "./common.js";

const PAGE_SIZE = 50;
const FIELDS = ["status_code", "service", "server", "endpoint", "tenant_id", "source"];
const main = $("#main");
const jaegerUrl = main.dataset.jaegerUrl || "";
const canSave = main.dataset.canSave === "true";
const form = $("#search-form");
const qInput = $("#q");
const body = $("#results-body");
const summary = $("#result-summary");
const loadMore = $("#load-more");

/** Search state <- URL. */
function readState(search) {
  const p = new URLSearchParams(search);
  const state = {
    q: p.get("q") || "",
    level: p.getAll("level"),
    range: p.get("range") || (p.get("from") || p.get("to") ? "custom" : "24h"),
    from: p.get("from") || "",
    to: p.get("to") || "",
    sort: p.get("sort") || "timestamp",
    order: p.get("order") || "desc",
  };
  for (const field of FIELDS) state[field] = p.getAll(field);
  return state;
}

/** URL (page) query string of a state. */
function stateQuery(state) {
  const p = new URLSearchParams();
  if (state.q) p.set("q", state.q);
  for (const level of state.level) p.append("level", level);
  for (const field of FIELDS) for (const value of state[field]) p.append(field, value);
  p.set("range", state.range);
  if (state.range === "custom") {
    if (state.from) p.set("from", state.from);
    if (state.to) p.set("to", state.to);
  }
  if (state.sort !== "timestamp") p.set("sort", state.sort);
  if (state.order !== "desc") p.set("order", state.order);
  return p;
}

/** API query string of a state (search and export). */
function apiQuery(state) {
  const p = new URLSearchParams();
  if (state.q) p.set("q", state.q);
  for (const level of state.level) p.append("level", level);
  for (const field of FIELDS) for (const value of state[field]) p.append(field, value);
  const { from, to } = rangeParams(state.range, state.from, state.to);
  if (from) p.set("from", from);
  if (to) p.set("to", to);
  p.set("sort", state.sort);
  p.set("order", state.order);
  return p;
}

let state = readState(location.search);
const readRange = rangeControls(state);

function fillForm() {
  qInput.value = state.q;
  for (const box of $$('input[name="level"]', form)) box.checked = state.level.includes(box.value);
  for (const field of FIELDS) $(`#f-${field}`).value = state[field].join(", ");
  const select = $("#f-range");
  select.value = state.range;
  for (const box of $$(".custom-range")) box.hidden = state.range !== "custom";
  $("#f-from").value = state.from ? new Date(state.from).toISOString().slice(0, 19) : "";
  $("#f-to").value = state.to ? new Date(state.to).toISOString().slice(0, 19) : "";
  for (const button of $$("button.sort")) {
    const active = button.dataset.sort === state.sort;
    button.classList.toggle("active", active);
    button.dataset.order = active ? state.order : "";
    button.setAttribute("aria-sort", active ? (state.order === "asc" ? "ascending" : "descending") : "none");
  }
}

function readForm() {
  const next = { ...state, q: qInput.value.trim(), ...readRange() };
  next.level = $$('input[name="level"]:checked', form).map((box) => box.value);
  for (const field of FIELDS) {
    next[field] = $(`#f-${field}`).value.split(",").map((v) => v.trim()).filter(Boolean);
  }
  return next;
}

// --- query errors -----------------------------------------------------------------

function showQueryError(error) {
  const box = $("#q-error");
  const details = error.details || {};
  $("#q-error-text").textContent = state.q;
  const position = Number.isInteger(details.position) ? details.position : null;
  $("#q-error-caret").textContent = position === null ? "" : " ".repeat(Math.min(position, state.q.length)) + "^";
  const expected = details.expected ? ` (expected ${details.expected})` : "";
  $("#q-error-message").textContent = (details.message || error.message) + expected
    + (position === null ? "" : ` at position ${position}`);
  box.hidden = false;
}

// --- results -----------------------------------------------------------------------

let cursor = null;
let controller = null;
const hitsById = new Map();

function row(hit) {
  const tr = el("tr", { class: "hit", tabindex: 0, dataset: { id: hit.id } },
    el("td", { class: "nowrap" }, fmtTime(hit.timestamp)),
    el("td", {}, levelBadge(hit.level)),
    el("td", {}, hit.service || ""),
    el("td", { class: "endpoint" }, [hit.method ? el("span", { class: "method" }, hit.method + " ") : null, hit.endpoint || ""]),
    el("td", { class: `num status-${String(hit.status_code || "").charAt(0)}xx` }, hit.status_code ?? ""),
    el("td", { class: `num ${responseTimeClass(hit.response_time_ms)}` },
      hit.response_time_ms === undefined || hit.response_time_ms === null ? "" : hit.response_time_ms.toFixed(1)),
    el("td", { class: "message-cell" }, messageNode(hit)),
  );
  tr.addEventListener("click", () => showDetail(hit.id));
  tr.addEventListener("keydown", (event) => { if (event.key === "Enter") showDetail(hit.id); });
  return tr;
}

async function runSearch({ append = false } = {}) {
  if (controller) controller.abort();
  controller = new AbortController();
  const query = apiQuery(state);
  query.set("limit", String(PAGE_SIZE));
  if (append && cursor) query.set("cursor", cursor);
  if (!append) {
    $("#q-error").hidden = true;
    summary.textContent = "Searching…";
  }
  loadMore.disabled = true;
  try {
    const data = await api("/api/search?" + query.toString(), { signal: controller.signal });
    if (!append) { clear(body); hitsById.clear(); }
    for (const hit of data.hits) {
      hitsById.set(hit.id, hit);
      body.append(row(hit));
    }
    cursor = data.next_cursor;
    loadMore.hidden = !cursor;
    const shown = hitsById.size;
    summary.textContent = `${fmtInt(data.total)} result${data.total === 1 ? "" : "s"} · showing ${fmtInt(shown)} · ${data.took_ms.toFixed(1)} ms`;
    if (!data.total) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted center" }, "No events match.")));
    document.body.dataset.loaded = "true";
    if (!append) { loadHistory(); loadPopular(); }
  } catch (error) {
    if (error.name === "AbortError") return;
    if (!append) { clear(body); hitsById.clear(); loadMore.hidden = true; }
    if (error instanceof ApiError && error.status === 400 && error.code === "invalid_query") {
      showQueryError(error);
      summary.textContent = "Invalid query.";
    } else {
      summary.textContent = `Search failed: ${error.message}`;
    }
  } finally {
    loadMore.disabled = false;
  }
}

function updateExports() {
  const query = apiQuery(state);
  for (const format of ["csv", "ndjson"]) {
    const p = new URLSearchParams(query);
    p.set("format", format);
    $(`#export-${format}`).setAttribute("href", "/api/export?" + p.toString());
  }
}

/** Apply a new state: URL, form, results. */
function go(next, { push = true } = {}) {
  state = next;
  const url = "/search?" + stateQuery(state).toString();
  if (push && url !== location.pathname + location.search) history.pushState(null, "", url);
  fillForm();
  updateExports();
  cursor = null;
  runSearch();
}

// --- detail --------------------------------------------------------------------------

function showDetail(id) {
  const hit = hitsById.get(id);
  if (!hit) return;
  const { highlight: _ignored, ...event } = hit;
  $("#detail-json").textContent = JSON.stringify(event, null, 2);
  const trace = $("#trace-link");
  if (jaegerUrl && event.trace_id) {
    trace.setAttribute("href", `${jaegerUrl}/trace/${encodeURIComponent(event.trace_id)}`);
    trace.hidden = false;
  } else {
    trace.hidden = true;
    trace.removeAttribute("href");
  }
  for (const tr of $$("tr.selected", body)) tr.classList.remove("selected");
  const selected = body.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  if (selected) selected.classList.add("selected");
  $("#detail").hidden = false;
}
$("#detail-close").addEventListener("click", () => { $("#detail").hidden = true; });
document.addEventListener("keydown", (event) => { if (event.key === "Escape") $("#detail").hidden = true; });

// --- saved searches, history, popular ------------------------------------------------------

/** Saved/history filters ({level: [...], service: [...], from, to, range, sort, order}) -> state. */
function stateFromSaved(query, filters) {
  const f = filters || {};
  const list = (value) => (Array.isArray(value) ? value.map(String) : value ? [String(value)] : []);
  const next = { q: query || "", level: list(f.level), sort: f.sort || "timestamp", order: f.order || "desc" };
  for (const field of FIELDS) next[field] = list(f[field]);
  if (f.range) {
    next.range = f.range;
    next.from = f.range === "custom" ? f.from || "" : "";
    next.to = f.range === "custom" ? f.to || "" : "";
  } else {
    const relative = /^now-(15m|1h|24h|7d|30d)$/.exec(f.from || "");
    if (relative && !f.to) Object.assign(next, { range: relative[1], from: "", to: "" });
    else if (f.from || f.to) Object.assign(next, { range: "custom", from: f.from || "", to: f.to || "" });
    else Object.assign(next, { range: "all", from: "", to: "" });
  }
  return next;
}

function savedFilters(s) {
  const filters = { range: s.range, sort: s.sort, order: s.order };
  if (s.level.length) filters.level = s.level;
  for (const field of FIELDS) if (s[field].length) filters[field] = s[field];
  if (s.range === "custom") { filters.from = s.from; filters.to = s.to; }
  return filters;
}

function describe(query, filters) {
  const parts = [];
  if (query) parts.push(query);
  for (const [key, value] of Object.entries(filters || {})) {
    if (["sort", "order"].includes(key)) continue;
    parts.push(`${key}=${Array.isArray(value) ? value.join(",") : value}`);
  }
  return parts.join(" · ") || "(everything)";
}

async function loadSaved() {
  if (!canSave) return;
  const list = clear($("#saved-list"));
  try {
    const data = await api("/api/saved-searches");
    for (const saved of data.saved_searches) {
      const href = "/search?" + stateQuery(stateFromSaved(saved.query, saved.filters)).toString();
      const link = el("a", { href, class: "saved-link", title: describe(saved.query, saved.filters) }, saved.name);
      link.addEventListener("click", (event) => {
        event.preventDefault();
        go(stateFromSaved(saved.query, saved.filters));
      });
      const remove = confirmButton("×", "delete?", async () => {
        try {
          await api(`/api/saved-searches/${encodeURIComponent(saved.id)}`, { method: "DELETE" });
          loadSaved();
        } catch (error) { toast(error.message, "error"); }
      }, { title: "Delete this saved search", "aria-label": `Delete saved search ${saved.name}` });
      list.append(el("li", {}, link, el("small", { class: "muted" }, describe(saved.query, saved.filters)), remove));
    }
    if (!list.firstChild) list.append(el("li", { class: "muted" }, "Nothing saved yet."));
  } catch (error) {
    list.append(el("li", { class: "muted" }, `Could not load: ${error.message}`));
  }
}

async function loadHistory() {
  const list = clear($("#history-list"));
  try {
    const data = await api("/api/search-history?limit=10");
    for (const entry of data.history) {
      const next = stateFromSaved(entry.query, entry.filters);
      const link = el("a", { href: "/search?" + stateQuery(next).toString() }, describe(entry.query, entry.filters));
      link.addEventListener("click", (event) => { event.preventDefault(); go(next); });
      list.append(el("li", {}, link, el("small", { class: "muted" }, ` ${fmtInt(entry.results_count)} hits`)));
    }
    if (!list.firstChild) list.append(el("li", { class: "muted" }, "No searches yet."));
  } catch (error) {
    list.append(el("li", { class: "muted" }, `Could not load: ${error.message}`));
  }
}

async function loadPopular() {
  const list = clear($("#popular-list"));
  try {
    const data = await api("/api/popular-searches?limit=8");
    for (const entry of data.searches) {
      const next = { ...stateFromSaved(entry.query, {}), range: state.range, from: state.from, to: state.to };
      const link = el("a", { href: "/search?" + stateQuery(next).toString() }, entry.query);
      link.addEventListener("click", (event) => { event.preventDefault(); go(next); });
      list.append(el("li", {}, link, el("small", { class: "muted" }, ` ×${entry.count}`)));
    }
    if (!list.firstChild) list.append(el("li", { class: "muted" }, "Nothing yet."));
  } catch (error) {
    list.append(el("li", { class: "muted" }, `Could not load: ${error.message}`));
  }
}

$("#clear-history").addEventListener("click", async () => {
  try {
    await api("/api/search-history", { method: "DELETE" });
    loadHistory();
    loadPopular();
  } catch (error) { toast(error.message, "error"); }
});

const saveForm = $("#save-form");
if (saveForm) {
  saveForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#save-name").value.trim();
    if (!name) return;
    try {
      await api("/api/saved-searches", { method: "POST", body: { name, query: state.q, filters: savedFilters(state) } });
      $("#save-name").value = "";
      toast(`Saved “${name}”.`);
      loadSaved();
    } catch (error) {
      if (error.code === "invalid_query") showQueryError(error);
      toast(`Could not save: ${error.message}`, "error");
    }
  });
}

// --- wiring -------------------------------------------------------------------------------

form.addEventListener("submit", (event) => { event.preventDefault(); go(readForm()); });
for (const input of $$('input[name="level"]', form)) input.addEventListener("change", () => go(readForm()));
$("#f-range").addEventListener("change", () => { if ($("#f-range").value !== "custom") go(readForm()); });
for (const field of ["service", "server", "endpoint", "tenant_id"]) suggest($(`#f-${field}`), field);
for (const button of $$("button.sort")) {
  button.addEventListener("click", () => {
    const field = button.dataset.sort;
    const order = state.sort === field && state.order === "desc" ? "asc" : "desc";
    go({ ...state, sort: field, order });
  });
}
loadMore.addEventListener("click", () => runSearch({ append: true }));
window.addEventListener("popstate", () => go(readState(location.search), { push: false }));

go(state, { push: false });
loadSaved();
