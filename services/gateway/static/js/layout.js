// Every page: the logout button.
import { api, toast } from "./common.js";

const logout = document.getElementById("logout");
if (logout) {
  logout.addEventListener("click", async () => {
    try {
      await api("/api/auth/logout", { method: "POST", redirectOn401: false });
    } catch (error) {
      if (error.status !== 401) { toast(error.message, "error"); return; }
    }
    location.assign("/login");
  });
}
