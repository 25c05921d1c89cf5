// Files: list with totals; admins may delete (inline two-step confirmation); refreshes while any is in progress.
import { $, api, clear, confirmButton, el, fmtBytes, fmtInt, fmtTime, toast } from "./common.js";

const isAdmin = $("#main").dataset.admin === "true";
const body = $("#files-body");
let timer = 0;

function fileRow(file) {
  const actions = el("td", { class: "nowrap" },
    el("a", { class: "btn btn-small", href: `/search?range=all&source=${encodeURIComponent("upload:" + file.id)}` }, "Search"));
  if (isAdmin) {
    actions.append(" ", confirmButton("Delete", "Confirm delete", async () => {
      try {
        await api(`/api/files/${encodeURIComponent(file.id)}`, { method: "DELETE" });
        toast(`Deleted ${file.filename} and its events.`);
        load();
      } catch (error) { toast(`Delete failed: ${error.message}`, "error"); }
    }, { class: "btn btn-small btn-danger delete-file", "aria-label": `Delete ${file.filename}` }));
  }
  const errors = file.errors && file.errors.length
    ? el("details", {}, el("summary", {}, `${file.errors.length} error(s)`),
      el("ul", {}, file.errors.slice(0, 10).map((e) => el("li", {}, `line ${e.line}: ${e.reason}`))))
    : null;
  return el("tr", { dataset: { fileId: file.id, status: file.status } },
    el("td", {}, el("strong", {}, file.filename), errors, file.failure_reason ? el("p", { class: "form-error" }, file.failure_reason) : null),
    el("td", {}, el("span", { class: `state state-${file.status}` }, file.status)),
    el("td", {}, file.format || file.file_type || ""),
    el("td", { class: "num" }, fmtBytes(file.file_size)),
    el("td", { class: "num" }, fmtInt(file.records_count)),
    el("td", { class: "num" }, fmtInt(file.indexed_count)),
    el("td", { class: "num" }, fmtInt(file.rejected_count)),
    el("td", { class: "nowrap" }, fmtTime(file.uploaded_at)),
    actions,
  );
}

async function load() {
  clearTimeout(timer);
  try {
    const data = await api("/api/files");
    clear(body);
    for (const file of data.files) body.append(fileRow(file));
    if (!data.files.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "No files uploaded yet.")));
    $("#total-files").textContent = fmtInt(data.stats.total_files);
    $("#total-logs").textContent = fmtInt(data.stats.total_logs);
    $("#total-size").textContent = fmtBytes(data.stats.total_size);
    document.body.dataset.loaded = "true";
    if (data.files.some((f) => f.status === "uploaded" || f.status === "processing")) timer = setTimeout(load, 2000);
  } catch (error) {
    clear(body).append(el("tr", {}, el("td", { colspan: 9, class: "form-error" }, `Could not load the files: ${error.message}`)));
  }
}

load();
