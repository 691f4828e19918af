// Starts Swagger UI on /docs. Loaded as a file because the page's CSP allows no inline script.
// Everything it fetches is on this host: the spec is /openapi.json, the spec validator badge
// (validator.swagger.io by default) is off, the spec URL cannot be changed from the query
// string, and "Try it out" sends its requests to the spec's `servers` (keep them relative, e.g.
// "/", so that is this host).
// The API's security scheme is a bearer token, so there is no OAuth2 flow; Swagger UI's
// default oauth2RedirectUrl is on this host anyway.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  document.body.style.margin = "0";
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    queryConfigEnabled: false,
    displayRequestDuration: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
