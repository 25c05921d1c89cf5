// Upload: one XMLHttpRequest per file (byte progress), then poll GET /api/files/{id} until indexed or failed.
import { $, api, csrfToken, el, fmtBytes, fmtInt, loginUrl } from "./common.js";

const POLL_MS = 1000;
const DONE = new Set(["indexed", "failed"]);
const list = $("#upload-list");
const input = $("#file-input");
const zone = $("#dropzone");

function item(file) {
  const parts = {
    state: el("span", { class: "state state-uploading" }, "uploading"),
    bytes: el("progress", { max: 100, value: 0, "aria-label": `Upload progress of ${file.name}` }),
    text: el("p", { class: "upload-text muted" }, `0 / ${fmtBytes(file.size)}`),
    processing: el("progress", { max: 100, "aria-label": `Processing progress of ${file.name}`, hidden: true }),
    counts: el("p", { class: "upload-counts" }),
    errors: el("ol", { class: "upload-errors", hidden: true }),
    link: el("p", { hidden: true }),
  };
  const node = el("li", { class: "upload-item", dataset: { filename: file.name } },
    el("header", {}, el("strong", { class: "upload-name" }, file.name), parts.state),
    parts.bytes, parts.text, parts.processing, parts.counts, parts.errors, parts.link);
  list.prepend(node);
  return { node, ...parts };
}

function setState(view, status) {
  view.state.textContent = status;
  view.state.className = `state state-${status}`;
  view.node.dataset.status = status;
}

function showFile(view, file) {
  setState(view, file.status);
  view.node.dataset.fileId = file.id;
  view.processing.hidden = false;
  if (file.records_count > 0) {
    view.processing.max = file.records_count;
    view.processing.value = file.indexed_count;
  } else if (file.status === "indexed") {
    view.processing.max = 1; view.processing.value = 1;
  } else {
    view.processing.removeAttribute("value"); // indeterminate while parsing
  }
  view.counts.textContent = `parsed ${fmtInt(file.records_count)} · indexed ${fmtInt(file.indexed_count)} · `
    + `rejected ${fmtInt(file.rejected_count)}${file.format ? ` · format ${file.format}` : ""}`;
  view.counts.dataset.indexed = String(file.indexed_count);
  view.counts.dataset.rejected = String(file.rejected_count);
  const errors = file.errors || [];
  view.errors.replaceChildren(...errors.slice(0, 10).map((e) => el("li", {}, `line ${e.line}: ${e.reason}`)));
  if (file.failure_reason) view.errors.append(el("li", {}, file.failure_reason));
  view.errors.hidden = !view.errors.firstChild;
  if (file.status === "indexed") {
    view.link.replaceChildren(el("a", { href: `/search?range=all&source=${encodeURIComponent("upload:" + file.id)}` },
      "Search these events →"));
    view.link.hidden = false;
  }
}

async function poll(view, id) {
  for (;;) {
    let file;
    try {
      file = await api(`/api/files/${encodeURIComponent(id)}`);
    } catch (error) {
      view.counts.textContent = `Could not read the progress: ${error.message}`;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS * 3));
      continue;
    }
    showFile(view, file);
    if (DONE.has(file.status)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function upload(file) {
  const view = item(file);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", "/api/upload");
  xhr.setRequestHeader("X-CSRF-Token", csrfToken());
  xhr.setRequestHeader("Accept", "application/json");
  xhr.responseType = "json";
  xhr.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    view.bytes.value = Math.round((event.loaded / event.total) * 100);
    view.text.textContent = `${fmtBytes(event.loaded)} / ${fmtBytes(event.total)}`;
  });
  xhr.addEventListener("load", () => {
    const body = xhr.response || {};
    if (xhr.status === 401) { location.assign(loginUrl()); return; }
    if (xhr.status !== 202 && xhr.status !== 200) {
      setState(view, "failed");
      const message = body.error ? body.error.message : `HTTP ${xhr.status}`;
      view.text.textContent = `Upload refused: ${message}`;
      return;
    }
    view.bytes.value = 100;
    view.text.textContent = `${fmtBytes(file.size)} uploaded`;
    const stored = (body.files || [])[0];
    if (!stored) { setState(view, "failed"); return; }
    showFile(view, stored);
    if (!DONE.has(stored.status)) poll(view, stored.id);
  });
  xhr.addEventListener("error", () => {
    setState(view, "failed");
    view.text.textContent = "Network error during the upload.";
  });
  const form = new FormData();
  form.append("file", file, file.name);
  xhr.send(form);
}

function uploadAll(files) {
  for (const file of Array.from(files)) upload(file);
}

input.addEventListener("change", () => { uploadAll(input.files); input.value = ""; });
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  zone.addEventListener(type, () => zone.classList.remove("over"));
}
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(event.dataTransfer.files);
});
// Dropping outside the zone must not navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
