// Shared helpers of every page. Data from the API only ever reaches the DOM
// through textContent / createElement (never innerHTML).

/** Create an element: el("a", {href: "/x", class: "btn"}, "text", otherNode). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "href" || key === "src") node.setAttribute(key, safeUrl(value));
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/** Append children (nodes, strings, arrays; null skipped) as nodes / text. */
export function append(node, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Only same-site paths and http(s) URLs become links (never javascript: or data:). */
export function safeUrl(value) {
  const text = String(value);
  if (/^\/(?![/\\])/.test(text)) return text;
  try {
    const url = new URL(text);
    if (url.protocol === "http:" || url.protocol === "https:") return url.href;
  } catch { /* not absolute */ }
  return "#";
}

/** Remove every child of a node. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** The CSRF token of the session (meta tag, else the readable cookie). */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|;\s*)logwarden_csrf=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error ? body.error : {};
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || "";
    this.details = error.details;
  }
}

/** Where to go to sign in again, coming back here afterwards. */
export function loginUrl() {
  return "/login?next=" + encodeURIComponent(location.pathname + location.search);
}

/** Call the JSON API with the session cookie (and X-CSRF-Token on writes). */
export async function api(path, { method = "GET", body, signal, redirectOn401 = true } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", signal };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!["GET", "HEAD"].includes(method)) headers["X-CSRF-Token"] = csrfToken();
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401 && redirectOn401) {
    location.assign(loginUrl());
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Show a short message at the bottom of the page. */
let toastTimer = 0;
export function toast(message, kind = "info") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = message;
  box.className = `toast toast-${kind}`;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 5000);
}

const intFormat = new Intl.NumberFormat("en-US");
export function fmtInt(value) { return value === null || value === undefined ? "–" : intFormat.format(value); }
export function fmtPercent(fraction) {
  return fraction === null || fraction === undefined ? "–" : (fraction * 100).toFixed(2) + "%";
}
export function fmtMs(value) {
  return value === null || value === undefined ? "–" : (Math.round(value * 10) / 10).toFixed(1) + " ms";
}
export function fmtBytes(bytes) {
  if (bytes === null || bytes === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes; let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return (unit === 0 ? String(value) : value.toFixed(1)) + " " + units[unit];
}
/** "2024-05-01 12:00:00.123 UTC"-style, always UTC (the API's times are UTC). */
export function fmtTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toISOString().replace("T", " ").replace("Z", "");
}

/** Colour class of a KPI: error rate < 1% good, < 5% warn; response time < 500 ms good, < 1000 ms warn. */
export function errorRateClass(fraction) {
  if (fraction === null || fraction === undefined) return "";
  return fraction < 0.01 ? "good" : fraction < 0.05 ? "warn" : "bad";
}
export function responseTimeClass(ms) {
  if (ms === null || ms === undefined) return "";
  return ms < 500 ? "good" : ms < 1000 ? "warn" : "bad";
}

/** A coloured level badge. */
export function levelBadge(level) {
  const name = String(level || "").toUpperCase();
  return el("span", { class: `badge level-${/^[A-Z]+$/.test(name) ? name : "OTHER"}` }, name || "?");
}

/**
 * Highlighted text: the API wraps matches in U+0000 ... U+0001. Split on the
 * markers and wrap the matched parts in <mark> (text nodes only).
 */
export function highlighted(fragment) {
  const out = document.createDocumentFragment();
  const parts = String(fragment).split("\u0000");
  out.append(document.createTextNode(parts[0].replaceAll("\u0001", "")));
  for (const part of parts.slice(1)) {
    const end = part.indexOf("\u0001");
    if (end === -1) {
      out.append(el("mark", {}, part));
      continue;
    }
    out.append(el("mark", {}, part.slice(0, end)));
    out.append(document.createTextNode(part.slice(end + 1).replaceAll("\u0001", "")));
  }
  return out;
}

/** The message of a hit, with its highlight fragments when the API gave any. */
export function messageNode(hit) {
  const fragments = hit.highlight && Array.isArray(hit.highlight.message) ? hit.highlight.message : [];
  if (!fragments.length) return document.createTextNode(hit.message || "");
  const out = document.createDocumentFragment();
  fragments.forEach((fragment, index) => {
    if (index) out.append(document.createTextNode(" … "));
    out.append(highlighted(fragment));
  });
  return out;
}

/** Quote a text as a query-language phrase (backslash-escaped). */
export function phrase(text) {
  return '"' + String(text).replaceAll("\\", "\\\\").replaceAll('"', '\\"') + '"';
}

export const RANGES = ["15m", "1h", "24h", "7d", "30d", "all", "custom"];

/** `from`/`to` API parameters of a range choice (custom: the given ISO times). */
export function rangeParams(range, from, to) {
  if (range === "custom") return { from: from || "", to: to || "" };
  if (!range || range === "all") return { from: "", to: "" };
  return { from: `now-${range}`, to: "" };
}

/** datetime-local value (UTC) <-> ISO 8601 UTC. */
export function localInputToIso(value) { return value ? value + (value.length === 16 ? ":00" : "") + "Z" : ""; }
export function isoToLocalInput(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  return date.toISOString().slice(0, 19);
}

/** Wire the range select and the custom from/to inputs; returns a getter of {range, from, to}. */
export function rangeControls(initial) {
  const select = document.getElementById("f-range");
  const fromInput = document.getElementById("f-from");
  const toInput = document.getElementById("f-to");
  const customs = $$(".custom-range");
  select.value = RANGES.includes(initial.range) ? initial.range : "24h";
  fromInput.value = isoToLocalInput(initial.from);
  toInput.value = isoToLocalInput(initial.to);
  const sync = () => { for (const box of customs) box.hidden = select.value !== "custom"; };
  select.addEventListener("change", sync);
  sync();
  return () => ({
    range: select.value,
    from: select.value === "custom" ? localInputToIso(fromInput.value) : "",
    to: select.value === "custom" ? localInputToIso(toInput.value) : "",
  });
}

/** Fill a <datalist> with suggestions for a field (GET /api/suggest/{field}). */
export function suggest(input, field) {
  const list = document.getElementById(input.getAttribute("list"));
  if (!list) return;
  let timer = 0;
  let controller = null;
  const load = () => {
    if (controller) controller.abort();
    controller = new AbortController();
    const url = `/api/suggest/${encodeURIComponent(field)}?prefix=${encodeURIComponent(input.value)}&limit=20`;
    api(url, { signal: controller.signal })
      .then((data) => {
        clear(list);
        for (const value of (data && data.values) || []) list.append(el("option", { value }));
      })
      .catch(() => { /* suggestions are optional */ });
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 200); });
  input.addEventListener("focus", load, { once: true });
}

/** A two-step inline confirmation (no native dialogs): first click arms, second click runs. */
export function confirmButton(label, confirmLabel, action, attrs = {}) {
  const button = el("button", { type: "button", class: "btn btn-small btn-danger", ...attrs }, label);
  let armed = false;
  let timer = 0;
  button.addEventListener("click", async () => {
    if (!armed) {
      armed = true;
      button.textContent = confirmLabel;
      button.classList.add("armed");
      timer = setTimeout(() => { armed = false; button.textContent = label; button.classList.remove("armed"); }, 4000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
      armed = false;
      button.textContent = label;
      button.classList.remove("armed");
    }
  });
  return button;
}
