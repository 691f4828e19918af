//! The OpenAPI document against the route table and the committed `docs/openapi.json`,
//! and the documentation pages with every asset they reference.

use crate::helpers::*;
use serde_json::Value;
use sightline::auth::Access;
use std::collections::BTreeSet;

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[tokio::test]
async fn document_lists_exactly_the_routes_of_the_table() {
    let app = TestApp::spawn().await;
    let (status, doc, _) = send(app.get("/openapi.json")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut in_doc = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            in_doc.insert((method.to_uppercase(), path.clone()));
            // Every operation documents its problems with the Problem schema.
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{method} {path} lacks 500");
            for (code, r) in responses {
                // Errors are problems; a probe's 503 answers its own report instead.
                let own_body = r["content"].get("application/json").is_some() && code == "503";
                if (code.starts_with('4') || code.starts_with('5')) && !own_body {
                    assert_eq!(
                        r["content"]["application/problem+json"]["schema"]["$ref"], "#/components/schemas/Problem",
                        "{method} {path} {code}"
                    );
                }
            }
        }
    }
    let specs = sightline::http::route_specs();
    let in_table: BTreeSet<(String, String)> =
        specs.iter().map(|s| (s.method.to_string(), s.path.to_owned())).collect();
    assert_eq!(in_doc, in_table, "the document and the route table differ");
    for spec in &specs {
        let op = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
        let what = format!("{} {}", spec.method, spec.path);
        assert!(!op["summary"].as_str().unwrap_or("").is_empty(), "{what} has no summary");
        let class = format!("Rate-limit class: `{}`", spec.class.name());
        assert!(op["description"].as_str().unwrap().contains(&class), "{what}: {}", op["description"]);
        assert!(op["x-required-role"].is_string(), "{what}");
        let secured = op.get("security").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        assert_eq!(secured, spec.access != Access::Public, "{what}: security vs access");
        if spec.access != Access::Public {
            for s in ["401", "403", "429"] {
                assert!(op["responses"].get(s).is_some(), "{what} lacks {s}");
            }
        }
        for p in spec.path_params() {
            let params = op["parameters"].as_array().expect("parameters");
            assert!(params.iter().any(|x| x["name"] == p && x["in"] == "path"), "{what} lacks path parameter {p}");
        }
        // Every $ref points at a component that exists.
        for r in refs(op) {
            let name = r.strip_prefix("#/components/schemas/").expect("a schema ref");
            assert!(doc["components"]["schemas"].get(name).is_some(), "{what}: {r} is missing");
        }
    }
    for scheme in ["bearerJwt", "apiKey"] {
        assert_eq!(doc["components"]["securitySchemes"][scheme]["scheme"], "bearer");
    }
}

fn refs(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap_or_default().to_owned());
                } else {
                    out.extend(refs(x));
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| out.extend(refs(x))),
        _ => {}
    }
    out
}

#[tokio::test]
async fn committed_document_is_current() {
    let generated = sightline::http::openapi::pretty_json();
    let path = committed_path();
    if std::env::var_os("SIGHTLINE_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the code's document; regenerate it with \
         `SIGHTLINE_WRITE_OPENAPI=1 ./dev test --test api openapi` (or `sightline openapi > docs/openapi.json`)"
    );
}

#[tokio::test]
async fn document_is_served_on_each_path_as_json_or_yaml() {
    let app = TestApp::spawn().await;
    let (_, json, _) = send(app.get("/openapi.json")).await;
    for path in ["/api/schema/", "/api/schema?format=json", "/openapi.json?format=json"] {
        let res = app.get(path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json, "{path}");
    }
    let res = app.get("/api/schema/?format=yaml").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/yaml"));
    let text = res.text().await.unwrap();
    assert!(text.starts_with("openapi: 3.1.0"), "{}", &text[..40.min(text.len())]);
    assert!(text.contains("/api/v1/analytics/events:"));
    let (status, problem, _) = send(app.get("/api/schema/?format=xml")).await;
    assert_eq!(status, 400);
    assert!(problem["detail"].as_str().unwrap().contains("xml"), "{problem}");
}

/// The `/docs/assets/...` URLs a page references in `src` and `href`.
fn referenced_assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let url = &rest[..rest.find('"').unwrap()];
            out.push(url.to_owned());
        }
    }
    out
}

#[tokio::test]
async fn docs_pages_and_their_assets_are_served_from_here_compressed_and_cacheable() {
    let app = TestApp::spawn().await;
    let pages = [
        ("/docs", "swagger-init.js"),
        ("/swagger/", "swagger-init.js"),
        ("/api/schema/swagger-ui/", "swagger-init.js"),
        ("/redoc", "redoc-init.js"),
        ("/api/schema/redoc/", "redoc-init.js"),
    ];
    let mut seen_assets = BTreeSet::new();
    for (page, init) in pages {
        let res = app.get(page).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{page}");
        let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'"), "{page}: {csp}");
        assert!(!csp.contains("unsafe-eval") && !csp.contains("http"), "{page}: {csp}");
        let html = res.text().await.unwrap();
        let assets = referenced_assets(&html);
        assert!(assets.iter().any(|a| a.ends_with(init)), "{page} does not load {init}: {assets:?}");
        for url in assets {
            if url.starts_with("data:") || url == "/openapi.json" {
                continue;
            }
            assert!(url.starts_with("/docs/assets/"), "{page} references {url}, not one of ours");
            seen_assets.insert(url);
        }
        assert!(!html.contains("http://") && !html.contains("https://"), "{page} names another host");
    }
    let client = reqwest::Client::builder().no_gzip().build().unwrap();
    for url in &seen_assets {
        let res = client.get(app.url(url)).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        assert_eq!(res.headers()["content-encoding"], "gzip", "{url}");
        assert!(res.headers()["cache-control"].to_str().unwrap().contains("max-age"), "{url}");
        let gz = res.bytes().await.unwrap();
        let plain = client.get(app.url(url)).send().await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none(), "{url} without Accept-Encoding");
        let plain = plain.bytes().await.unwrap();
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
        assert_eq!(unzipped, plain.to_vec(), "{url}: the gzipped asset is the asset");
        // The init scripts fetch the document from here.
        if url.ends_with("-init.js") {
            let text = String::from_utf8(plain.to_vec()).unwrap();
            assert!(text.contains("/openapi.json"), "{url}");
        }
    }
    let expected: BTreeSet<String> =
        sightline::http::docs::asset_names().map(|n| format!("/docs/assets/{n}")).collect();
    assert_eq!(seen_assets, expected, "every embedded asset is used by a page, and no page misses one");
    let (status, _, _) = send(app.get("/docs/assets/nothing.js")).await;
    assert_eq!(status, 404);
    let (status, _, _) = send(app.get("/docs/assets/swagger.html")).await;
    assert_eq!(status, 404);
    // API answers keep their strict policy and no-store.
    let res = app.get("/api/v1/auth/me").send().await.unwrap();
    assert_eq!(res.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(res.headers()["cache-control"], "no-store");
}

/// Every documented request example is a request the API accepts: posted as is, each
/// answers 2xx. (Schemathesis starts from these, so a wrong one would hide the API behind
/// validation errors.)
#[tokio::test]
async fn every_documented_request_example_is_accepted() {
    let app = TestApp::spawn().await;
    let (_, doc, _) = send(app.get("/openapi.json")).await;
    let schemas = &doc["components"]["schemas"];
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(r) = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() else { continue };
            let name = r.trim_start_matches("#/components/schemas/");
            let Some(example) = schemas[name].get("example") else { continue };
            if method != "post" || path.contains('{') {
                continue;
            }
            let (status, body, _) = send(app.request("POST", path).bearer_auth(superuser()).json(example)).await;
            assert!((200..300).contains(&status), "POST {path} with {name}'s example: {status} {body}");
            tried += 1;
        }
    }
    assert!(tried >= 10, "only {tried} examples were tried");
}
