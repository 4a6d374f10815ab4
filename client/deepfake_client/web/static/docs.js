// The API page: Swagger UI from the installed swagger-ui-py assets, on /openapi.json.
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui" });
});
