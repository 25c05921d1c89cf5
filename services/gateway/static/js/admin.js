// Admin: users, API keys (shown once), retention.
import { $, api, clear, confirmButton, el, fmtTime, toast } from "./common.js";

const ROLES = ["viewer", "analyst", "admin"];
const me = ($("#user-name") || {}).textContent || "";

function fail(prefix) {
  return (error) => toast(`${prefix}: ${error.message}`, "error");
}

// --- users ----------------------------------------------------------------------------

function userRow(user) {
  const role = el("select", { "aria-label": `Role of ${user.username}` }, ROLES.map((r) => el("option", { value: r }, r)));
  role.value = user.role;
  role.addEventListener("change", () => patchUser(user, { role: role.value }).catch((error) => {
    role.value = user.role;
    fail("Role change failed")(error);
  }));
  const toggle = el("button", { type: "button", class: "btn btn-small" }, user.disabled ? "Enable" : "Disable");
  toggle.addEventListener("click", () => patchUser(user, { disabled: !user.disabled }).catch(fail("Change failed")));
  const remove = confirmButton("Delete", "Confirm delete", () =>
    api(`/api/users/${encodeURIComponent(user.id)}`, { method: "DELETE" })
      .then(() => { toast(`Deleted ${user.username}.`); loadUsers(); })
      .catch(fail("Delete failed")), { "aria-label": `Delete ${user.username}` });
  return el("tr", { dataset: { userId: user.id } },
    el("td", {}, el("strong", {}, user.username), user.username === me ? el("small", { class: "muted" }, " (you)") : null),
    el("td", {}, user.email || ""),
    el("td", {}, role),
    el("td", {}, el("span", { class: `state ${user.disabled ? "state-failed" : "state-indexed"}` }, user.disabled ? "disabled" : "active")),
    el("td", { class: "nowrap" }, user.last_login ? fmtTime(user.last_login) : "never"),
    el("td", { class: "nowrap" }, toggle, " ", remove));
}

async function patchUser(user, changes) {
  await api(`/api/users/${encodeURIComponent(user.id)}`, { method: "PATCH", body: changes });
  toast(`Updated ${user.username}.`);
  loadUsers();
}

async function loadUsers() {
  const body = $("#users-body");
  try {
    const data = await api("/api/users");
    clear(body);
    for (const user of data.data) body.append(userRow(user));
    document.body.dataset.loaded = "true";
  } catch (error) {
    clear(body).append(el("tr", {}, el("td", { colspan: 6, class: "form-error" }, error.message)));
  }
}

$("#user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const body = { username: form.username.value.trim(), password: form.password.value, role: form.role.value };
  if (form.email.value.trim()) body.email = form.email.value.trim();
  try {
    await api("/api/users", { method: "POST", body });
    form.reset();
    toast(`Created ${body.username}.`);
    loadUsers();
  } catch (error) {
    const detail = Array.isArray(error.details) && error.details[0] ? ` (${error.details[0].msg || ""})` : "";
    toast(`Could not create the user: ${error.message}${detail}`, "error");
  }
});

// --- keys ------------------------------------------------------------------------------

function keyRow(key) {
  const revoke = confirmButton("Revoke", "Confirm revoke", () =>
    api(`/api/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" })
      .then(() => { toast(`Revoked ${key.name}.`); loadKeys(); })
      .catch(fail("Revoke failed")), { "aria-label": `Revoke ${key.name}` });
  return el("tr", { dataset: { keyId: key.id } },
    el("td", {}, key.name),
    el("td", {}, el("code", {}, key.prefix)),
    el("td", {}, key.scopes.join(", ")),
    el("td", {}, key.tenant_id || "all"),
    el("td", { class: "nowrap" }, fmtTime(key.created_at)),
    el("td", { class: "nowrap" }, key.last_used_at ? fmtTime(key.last_used_at) : "never"),
    el("td", {}, revoke));
}

async function loadKeys() {
  const body = $("#keys-body");
  try {
    const data = await api("/api/keys");
    clear(body);
    for (const key of data.data) body.append(keyRow(key));
    if (!data.data.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No API keys.")));
  } catch (error) {
    clear(body).append(el("tr", {}, el("td", { colspan: 7, class: "form-error" }, error.message)));
  }
}

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const scopes = Array.from(form.querySelectorAll('input[name="scopes"]:checked')).map((box) => box.value);
  const body = { name: form.name.value.trim(), scopes };
  if (form.tenant_id.value.trim()) body.tenant_id = form.tenant_id.value.trim();
  try {
    const created = await api("/api/keys", { method: "POST", body });
    $("#key-value").value = created.key;
    $("#key-once").hidden = false;
    $("#key-value").select();
    form.reset();
    loadKeys();
  } catch (error) {
    const detail = Array.isArray(error.details) && error.details[0] ? ` (${error.details[0].msg || ""})` : "";
    toast(`Could not create the key: ${error.message}${detail}`, "error");
  }
});
$("#key-copy").addEventListener("click", async () => {
  const value = $("#key-value").value;
  try {
    await navigator.clipboard.writeText(value);
    toast("Key copied to the clipboard.");
  } catch {
    $("#key-value").select();
    toast("Select the key and copy it (Ctrl+C).");
  }
});

// --- retention ----------------------------------------------------------------------------

async function loadRetention() {
  try {
    const data = await api("/api/settings/retention");
    $("#retention-days").value = data.retention_days;
  } catch (error) { fail("Could not read the retention")(error); }
}
$("#retention-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const data = await api("/api/settings/retention", { method: "PUT", body: { retention_days: Number($("#retention-days").value) } });
    $("#retention-days").value = data.retention_days;
    toast(`Events are now kept ${data.retention_days} days.`);
  } catch (error) { fail("Could not save the retention")(error); }
});

loadUsers();
loadKeys();
loadRetention();
