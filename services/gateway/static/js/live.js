// Live tail over Socket.IO (namespace /live): filters, pause, capped buffer, resume with last_id.
import { $, $$, el, fmtInt, fmtTime, levelBadge } from "./common.js";

const MAX_LINES = 2000;
const CHART_POINTS = 60;
const ALERT_LEVELS = new Set(["ERROR", "CRITICAL"]);
const log = $("#live-log");
const conn = $("#conn");
const pauseButton = $("#pause");
const autoscroll = $("#autoscroll");
const errorBox = $("#live-error");
const baseTitle = document.title;

let paused = false;
let pending = [];           // events received while paused
let lastId = null;          // id of the newest event received (resume point)
let hiddenErrors = 0;
let notificationsOn = false;
let secondCount = 0;
const perSecond = new Array(CHART_POINTS).fill(0);

function setConn(state, text) {
  conn.className = `conn ${state}`;
  conn.textContent = text;
  document.body.dataset.live = state;
}

function filters() {
  return {
    levels: $$('#live-filters input[name="level"]:checked').map((box) => box.value),
    services: $("#live-services").value.split(",").map((s) => s.trim()).filter(Boolean),
    q: $("#live-q").value.trim(),
  };
}

// --- rendering ------------------------------------------------------------------------

function line(event) {
  const level = String(event.level || "").toUpperCase();
  const where = [event.service, event.endpoint].filter(Boolean).join(" ");
  const status = event.status_code ? ` ${event.status_code}` : "";
  return el("div", { class: `live-line${ALERT_LEVELS.has(level) ? " flash" : ""}`, dataset: { id: event.id || "" } },
    el("span", { class: "muted" }, fmtTime(event.timestamp)),
    el("span", {}, levelBadge(level)),
    el("span", { class: "muted" }, where + status),
    el("span", { class: "live-message" }, event.message || ""));
}

function notice(text) {
  log.append(el("div", { class: "live-notice" }, text));
}

function trim() {
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  $("#line-count").textContent = fmtInt(log.querySelectorAll(".live-line").length);
}

function show(events) {
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  const fragment = document.createDocumentFragment();
  for (const event of events.slice(-MAX_LINES)) fragment.append(line(event));
  log.append(fragment);
  trim();
  if (autoscroll.checked && (nearBottom || events.length)) log.scrollTop = log.scrollHeight;
}

function alertErrors(events) {
  const errors = events.filter((e) => ALERT_LEVELS.has(String(e.level || "").toUpperCase()));
  if (!errors.length) return;
  if (document.hidden) {
    hiddenErrors += errors.length;
    document.title = `(${hiddenErrors}) ${baseTitle}`;
  }
  if (notificationsOn && "Notification" in window && Notification.permission === "granted" && document.hidden) {
    const first = errors[0];
    const more = errors.length > 1 ? ` (+${errors.length - 1} more)` : "";
    // Notification text is plain text, never HTML.
    new Notification(`${first.level} ${first.service || ""}`.trim() + more, { body: String(first.message || "").slice(0, 200), tag: "logwarden-live" });
  }
}
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) { hiddenErrors = 0; document.title = baseTitle; }
});

// --- rate chart -------------------------------------------------------------------------

let chart = null;
if (window.Chart) {
  chart = new window.Chart($("#eps-chart"), {
    type: "line",
    data: { labels: perSecond.map((_, i) => i - CHART_POINTS + 1), datasets: [{ data: perSecond.slice(), borderColor: "#2456c8",
      backgroundColor: "rgba(36,86,200,.15)", fill: true, pointRadius: 0, tension: 0.3, borderWidth: 1.5 }] },
    options: { animation: false, maintainAspectRatio: false, plugins: { legend: { display: false }, tooltip: { enabled: false } },
      scales: { x: { display: false }, y: { beginAtZero: true, ticks: { maxTicksLimit: 3 } } } },
  });
}
setInterval(() => {
  perSecond.push(secondCount);
  perSecond.shift();
  secondCount = 0;
  const window10 = perSecond.slice(-5);
  $("#eps").textContent = (window10.reduce((a, b) => a + b, 0) / window10.length).toFixed(1);
  if (chart) { chart.data.datasets[0].data = perSecond.slice(); chart.update("none"); }
}, 1000);

// --- socket ---------------------------------------------------------------------------------

const socket = window.io("/live", { path: "/socket.io/", transports: ["websocket", "polling"] });

function subscribe({ fresh = false } = {}) {
  const payload = { ...filters() };
  if (!fresh && lastId) payload.last_id = lastId;
  errorBox.hidden = true;
  document.body.dataset.subscribed = "false";
  socket.emit("subscribe", payload, (ack) => {
    if (!ack) return;
    if (ack.ok === false) {
      errorBox.textContent = `Filter refused: ${ack.message}${ack.position !== null && ack.position !== undefined ? ` (position ${ack.position})` : ""}`;
      errorBox.hidden = false;
      return;
    }
    if (payload.last_id && ack.resumed === false) notice("Reconnected: some events may have been missed while disconnected.");
    document.body.dataset.subscribed = "true";
    setConn("connected", `live${ack.backfill ? ` · ${fmtInt(ack.backfill)} recent` : ""}`);
  });
}

socket.on("connect", () => {
  setConn("connected", "live");
  subscribe();
});
socket.on("disconnect", (reason) => setConn("disconnected", `disconnected (${reason}) – reconnecting…`));
socket.on("connect_error", (error) => {
  setConn("disconnected", `cannot connect: ${error.message}`);
  if (socket.active === false) setTimeout(() => socket.connect(), 2000); // the server refused: retry slowly
});
socket.io.on("reconnect_attempt", () => setConn("connecting", "reconnecting…"));

socket.on("logs", (events) => {
  if (!Array.isArray(events) || !events.length) return;
  lastId = events[events.length - 1].id || lastId;
  secondCount += events.length;
  alertErrors(events);
  if (paused) {
    pending.push(...events);
    if (pending.length > MAX_LINES) pending = pending.slice(-MAX_LINES);
    pauseButton.textContent = `Resume (${fmtInt(pending.length)} new)`;
    return;
  }
  show(events);
});
socket.on("dropped", (info) => notice(`${fmtInt((info && info.count) || 0)} events dropped: the browser fell behind.`));
socket.on("subscribe_error", (info) => {
  errorBox.textContent = `Filter refused: ${(info && info.message) || "invalid"}`;
  errorBox.hidden = false;
});

// --- controls -----------------------------------------------------------------------------

$("#live-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  log.replaceChildren();
  pending = [];
  lastId = null;
  trim();
  subscribe({ fresh: true });
});
pauseButton.addEventListener("click", () => {
  paused = !paused;
  if (!paused) {
    show(pending);
    pending = [];
    pauseButton.textContent = "Pause";
  } else {
    pauseButton.textContent = "Resume";
  }
  document.body.dataset.paused = String(paused);
});
$("#clear").addEventListener("click", () => { log.replaceChildren(); pending = []; trim(); });
const notifyButton = $("#notify");
if (!("Notification" in window)) notifyButton.hidden = true;
notifyButton.addEventListener("click", async () => {
  if (notificationsOn) {
    notificationsOn = false;
    notifyButton.textContent = "Enable notifications";
    return;
  }
  const permission = await Notification.requestPermission();
  notificationsOn = permission === "granted";
  notifyButton.textContent = notificationsOn ? "Disable notifications" : "Notifications blocked";
});
