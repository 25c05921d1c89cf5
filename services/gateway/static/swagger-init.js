// Starts Swagger UI on /openapi.json (kept out of the HTML so the CSP needs no 'unsafe-inline').
window.addEventListener("DOMContentLoaded", function () {
  window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    withCredentials: true,
    requestInterceptor: function (request) {
      var match = document.cookie.match(/(?:^|; )logwarden_csrf=([^;]+)/);
      if (match) { request.headers["X-CSRF-Token"] = decodeURIComponent(match[1]); }
      return request;
    },
  });
});
