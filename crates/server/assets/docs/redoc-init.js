// Starts ReDoc on /redoc. Loaded as a file because the page's CSP allows no inline script.
// No web fonts are linked: the theme uses the system font stacks, so nothing is fetched from
// another host (the vendored bundle's Redocly logo is an inline SVG, see
// scripts/vendor-docs-assets.sh). The search index runs in a web worker made from a blob: URL,
// which is why the CSP has worker-src blob:. Styles: styled-components adds one empty <style>
// and fills it through CSSOM, and the bundle injects perfect-scrollbar's CSS as one inline
// <style>; a CSP without 'unsafe-inline' allows those two by hash (scripts/vendor-docs-assets.sh).
"use strict";
(function () {
  document.body.style.margin = "0";
  var sans = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  var mono = 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace';
  Redoc.init(
    "/openapi.json",
    {
      expandResponses: "200,201",
      pathInMiddlePanel: true,
      theme: {
        typography: {
          fontFamily: sans,
          headings: { fontFamily: sans },
          code: { fontFamily: mono },
        },
      },
    },
    document.getElementById("redoc"),
  );
})();
