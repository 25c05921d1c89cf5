// The sign-in form: POST /api/auth/login as JSON, then go to a *local* next path.
import { api } from "./common.js";

/** Only paths with a single leading "/" (no "//host", no backslashes, no control characters). */
export function safeNext(value) {
  if (typeof value !== "string" || !value.startsWith("/") || value.length > 2048) return "/";
  if (value.startsWith("//") || /[\\\u0000-\u0020\u007f\u00a0\u2028\u2029]/.test(value)) return "/";
  return value;
}

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");
const submit = document.getElementById("login-submit");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  if (!username || !password) {
    errorBox.textContent = "Enter your username and password.";
    errorBox.hidden = false;
    return;
  }
  submit.disabled = true;
  try {
    await api("/api/auth/login", { method: "POST", body: { username, password }, redirectOn401: false });
    location.assign(safeNext(form.dataset.next || "/"));
  } catch (error) {
    errorBox.textContent = error.status === 401 ? "Invalid username or password."
      : error.status === 429 ? "Too many attempts; wait a minute and try again."
      : `Sign-in failed: ${error.message}`;
    errorBox.hidden = false;
    submit.disabled = false;
    form.elements.password.select();
  }
});
