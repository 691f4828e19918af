#!/usr/bin/env python3
"""Checks Sightline's offline API docs pages in a real (headless) Chromium.

    python3 scripts/docs-browser-check.py BASE_URL      e.g. http://127.0.0.1:8080

Loads BASE_URL/docs (Swagger UI) and BASE_URL/redoc (ReDoc) with the headers the server sends
(its Content-Security-Policy included), waits until the operations are rendered, opens every
Swagger UI operation and the schemas, runs a ReDoc search (its search index lives in a blob:
web worker), and exits 1 with the reasons on any of:
  - a console error or a Content-Security-Policy console warning (page or worker),
  - an uncaught page error,
  - a CSP violation (securitypolicyviolation event),
  - a request to a host other than BASE_URL's (such requests are also aborted), a failed
    request, or a response with status >= 400,
  - fewer operations rendered than /openapi.json has, or none at all.
Exit 0 and a summary (operations rendered, requests, workers, time) when both pages are clean.

Needs: pip install -r scripts/docs-browser-check.requirements.txt, and Chromium at
/usr/bin/chromium (apt-get install chromium) or at $DOCS_CHECK_CHROMIUM. Never run
`playwright install`: the browser comes from the system package.
"""

import argparse
import json
import os
import sys
import time
import urllib.parse
import urllib.request

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright
except ImportError:
    sys.exit("FAIL: Playwright is missing: pip install -r scripts/docs-browser-check.requirements.txt")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Schemes that never leave the browser.
LOCAL_SCHEMES = {"data", "blob", "about"}

# Runs before any page script (injected by the browser, so the page's CSP does not apply to it).
CSP_PROBE = """
window.__docsCheckCsp = [];
window.addEventListener('securitypolicyviolation', function (e) {
  window.__docsCheckCsp.push({
    directive: e.effectiveDirective || e.violatedDirective,
    blocked: e.blockedURI,
    source: e.sourceFile,
    line: e.lineNumber,
    sample: e.sample,
    disposition: e.disposition,
  });
}, true);
"""

# ReDoc section ids: "tag/T/operation/ID", "operation/ID" (an extra anchor for old links),
# "tag/T/paths/~1p/get" or "/paths/~1p/get" when an operation has no operationId. Each
# operation has one heading whose anchor points at its section; count the distinct ones.
REDOC_OPERATION_SECTIONS = '[data-section-id*="operation/"], [data-section-id*="paths/"]'
REDOC_COUNT_OPERATIONS = """() => {
  const ids = new Set();
  for (const a of document.querySelectorAll('h2 > a[href^="#"]')) {
    const id = a.getAttribute('href').slice(1);
    if (/(^|\\/)(operation|paths)\\//.test(id)) ids.add(id);
  }
  return ids.size;
}"""


def spec_operation_count(base_url, timeout):
    """The number of operations in BASE_URL/openapi.json (None if it cannot be read)."""
    try:
        with urllib.request.urlopen(base_url + "/openapi.json", timeout=timeout) as resp:
            spec = json.load(resp)
    except (OSError, ValueError) as e:
        print(f"note: could not read {base_url}/openapi.json to count operations: {e}")
        return None
    return sum(
        1
        for item in (spec.get("paths") or {}).values()
        if isinstance(item, dict)
        for method in item
        if method.lower() in HTTP_METHODS
    )


class PageCheck:
    def __init__(self, browser, base_url, path, timeout_ms):
        self.base = urllib.parse.urlsplit(base_url)
        self.url = base_url + path
        self.path = path
        self.timeout_ms = timeout_ms
        self.problems = []
        self.requests = []
        self.workers = []
        self._console_seen = set()
        self.context = browser.new_context(service_workers="block")
        self.context.add_init_script(CSP_PROBE)
        self.context.route(self._is_foreign, self._abort)
        self.context.on("request", self._on_request)
        self.page = self.context.new_page()
        self.page.set_default_timeout(timeout_ms)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        self.page.on("requestfailed", self._on_request_failed)
        self.page.on("response", self._on_response)
        self.page.on("worker", self._on_worker)

    def _is_foreign(self, url):
        u = urllib.parse.urlsplit(url)
        if u.scheme in LOCAL_SCHEMES:
            return False
        return u.netloc.lower() != self.base.netloc.lower()

    def _abort(self, route):
        route.abort("blockedbyclient")

    def _on_request(self, req):
        self.requests.append(req.url)
        if self._is_foreign(req.url):
            self.problems.append(f"request to another host: {req.method} {req.url}")

    def _on_request_failed(self, req):
        if self._is_foreign(req.url):
            return  # already reported, and aborted by us
        self.problems.append(f"request failed: {req.method} {req.url} ({req.failure})")

    def _on_response(self, resp):
        if resp.status >= 400:
            self.problems.append(f"HTTP {resp.status} for {resp.request.method} {resp.url}")

    def _on_console(self, msg, origin="page"):
        loc = msg.location or {}
        key = (msg.type, msg.text, loc.get("url"), loc.get("lineNumber"), loc.get("columnNumber"))
        if key in self._console_seen:
            return  # the same message reported by the page and by its worker
        self._console_seen.add(key)
        where = f" at {loc.get('url')}:{loc.get('lineNumber')}" if loc.get("url") else ""
        if msg.type == "error":
            self.problems.append(f"console error ({origin}): {msg.text}{where}")
        elif msg.type == "warning" and "content security policy" in msg.text.lower():
            self.problems.append(f"CSP console warning ({origin}): {msg.text}{where}")

    def _on_worker(self, worker):
        self.workers.append(worker.url)
        try:
            worker.on("console", lambda msg: self._on_console(msg, origin=f"worker {worker.url}"))
        except PlaywrightError:
            pass

    def settle(self):
        """Let late requests, workers and errors happen before judging."""
        try:
            self.page.wait_for_load_state("networkidle", timeout=self.timeout_ms)
        except PlaywrightTimeout:
            self.problems.append("the page did not reach network idle")
        self.page.wait_for_timeout(500)

    def collect_csp_violations(self):
        try:
            violations = self.page.evaluate("window.__docsCheckCsp || []")
        except PlaywrightError as e:
            if not self.problems:  # otherwise the page never loaded, which is reported already
                self.problems.append(f"could not read CSP violations: {e}")
            return
        for v in violations:
            self.problems.append(
                "CSP violation: {directive} blocked {blocked!r} (source {source}:{line}, sample {sample!r}, {disposition})".format(**v)
            )

    def close(self):
        self.context.close()


OPEN_AT_MOST = 8


def check_swagger(check):
    page = check.page
    page.goto(check.url, wait_until="load")
    page.wait_for_selector(".opblock")
    page.wait_for_load_state("networkidle")
    ops = page.locator(".opblock").count()
    # Open the first operations (parameters, request bodies, responses, examples) and the
    # schemas. Not all: each click re-renders the page, and 70 take minutes.
    controls = page.locator(".opblock .opblock-summary-control")
    to_open = min(controls.count(), OPEN_AT_MOST)
    for i in range(to_open):
        controls.nth(i).click()
    if to_open:
        page.wait_for_function(
            "n => document.querySelectorAll('.opblock.is-open .opblock-body').length >= n", arg=to_open
        )
    opened = page.locator(".opblock.is-open .opblock-body").count()
    models = page.locator(".models-control")
    if models.count() and page.locator(".models.is-open").count() == 0:
        models.first.click()
    # OpenAPI 3.0 documents render schemas as .model-container, 3.1 as JSON Schema 2020-12
    # articles; expand each one all the way down.
    top_schemas = '.models .model-container, .models .json-schema-2020-12[data-json-schema-level="0"]'
    schemas = page.locator(top_schemas).count()
    expanders = page.locator(".models .model-container .model-box-control, .models .json-schema-2020-12-expand-deep-button")
    for i in range(expanders.count()):
        expanders.nth(i).click()
    return {"operations": ops, "opened": opened, "schemas": schemas}


def check_redoc(check):
    page = check.page
    page.goto(check.url, wait_until="load")
    page.wait_for_selector(REDOC_OPERATION_SECTIONS)
    page.wait_for_load_state("networkidle")
    ops = page.evaluate(REDOC_COUNT_OPERATIONS)
    menu_ops = page.locator("[role=navigation] .operation-type, [data-item-id] .operation-type").count()
    # Exercise the search index (a blob: web worker): search for the longest word of the first
    # operation's title (the longest, because the index drops stop words such as "get").
    search_results = None
    box = page.locator("[role=search] input")
    titles = page.locator("[role=navigation] li[data-item-id] .operation-type + span, [data-item-id] .operation-type + span")
    if box.count() and titles.count():
        words = sorted(titles.first.inner_text().split(), key=len, reverse=True)
        if words:
            results = '[data-role="search:results"] li'
            box.first.fill(words[0])
            try:
                page.wait_for_selector(results, timeout=check.timeout_ms)
                search_results = page.locator(results).count()
            except PlaywrightTimeout:
                check.problems.append(f"ReDoc search for {words[0]!r} showed no results")
                search_results = 0
    return {"operations": ops, "menu operations": menu_ops, "search results": search_results}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url", metavar="BASE_URL", help="e.g. http://127.0.0.1:8080")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each step (default 30)")
    ap.add_argument("--screenshots", metavar="DIR", help="save a screenshot of each page into DIR")
    ap.add_argument(
        "--chromium",
        default=os.environ.get("DOCS_CHECK_CHROMIUM", "/usr/bin/chromium"),
        help="Chromium binary (default /usr/bin/chromium or $DOCS_CHECK_CHROMIUM)",
    )
    args = ap.parse_args()
    base_url = args.base_url.rstrip("/")
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        ap.error("BASE_URL must start with http:// or https://")
    if not os.path.exists(args.chromium):
        print(f"FAIL: no Chromium at {args.chromium} (apt-get install chromium)", file=sys.stderr)
        return 1
    timeout_ms = args.timeout * 1000
    started = time.monotonic()
    expected = spec_operation_count(base_url, args.timeout)

    failed = False
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            for path, name, run in (("/docs", "swagger", check_swagger), ("/redoc", "redoc", check_redoc)):
                t0 = time.monotonic()
                check = PageCheck(browser, base_url, path, timeout_ms)
                seen = {}
                try:
                    seen = run(check)
                    check.settle()
                except PlaywrightTimeout as e:
                    check.problems.append(f"timed out waiting for the page to render: {e.message.splitlines()[0]}")
                except PlaywrightError as e:
                    check.problems.append(f"browser error: {e.message.splitlines()[0]}")
                check.collect_csp_violations()
                ops = seen.get("operations") or 0
                if not ops:
                    check.problems.append("no operation rendered")
                elif expected is not None and ops < expected:
                    check.problems.append(f"{ops} operations rendered, /openapi.json has {expected}")
                if args.screenshots:
                    os.makedirs(args.screenshots, exist_ok=True)
                    try:
                        check.page.screenshot(path=os.path.join(args.screenshots, f"{name}.png"), full_page=True)
                    except PlaywrightError:
                        pass
                took = time.monotonic() - t0
                details = ", ".join(f"{k}: {v}" for k, v in seen.items())
                workers = ", ".join(w.split(":", 1)[0] + ":" for w in check.workers) or "none"
                status = "FAIL" if check.problems else "ok"
                print(
                    f"{status} {check.url}: {details or 'nothing rendered'}"
                    f" (spec has {expected if expected is not None else '?'}); "
                    f"{len(check.requests)} requests, workers: {workers}; {took:.1f}s"
                )
                for p in check.problems:
                    print(f"  - {p}")
                failed = failed or bool(check.problems)
                check.close()
        finally:
            browser.close()

    total = time.monotonic() - started
    if failed:
        print(f"FAIL: the docs pages at {base_url} are not clean ({total:.1f}s)", file=sys.stderr)
        return 1
    print(f"ok: /docs and /redoc render with no console error, CSP violation or foreign request ({total:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
