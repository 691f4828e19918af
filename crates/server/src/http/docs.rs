//! The interactive documentation: Swagger UI at `/docs`, `/swagger/` and
//! `/api/schema/swagger-ui/`; ReDoc at `/redoc` and `/api/schema/redoc/`. Their assets are
//! vendored from npm (`scripts/vendor-docs-assets.sh`) and embedded in the binary, so no
//! request leaves the server; each is served gzipped when the client accepts it, with a
//! policy that lets the page run its own scripts and nothing else.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::io::Write;
use std::sync::OnceLock;

/// Swagger UI's policy: its own scripts and styles, `data:` icons, and fetches of the
/// document (and "Try it out") to this server only.
pub const SWAGGER_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// ReDoc's policy: as Swagger UI's, plus the two `<style>` elements ReDoc 2.5.4 writes
/// (an empty one it fills through the CSSOM, and perfect-scrollbar's CSS), allowed by
/// hash rather than `'unsafe-inline'`, and its search worker, made from a `blob:`. A new
/// ReDoc changes the second hash: `scripts/docs-browser-check.py` then fails and Chromium
/// names the new one.
pub const REDOC_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' \
     'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='; img-src data:; connect-src 'self'; \
     worker-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ASSET_COUNT: usize = 7;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ctype:literal) => {
        Asset { name: $name, content_type: $ctype, bytes: include_bytes!(concat!("../../assets/docs/", $name)) }
    };
}

const HTML: &str = "text/html; charset=utf-8";

static ASSETS: [Asset; ASSET_COUNT] = [
    asset!("swagger.html", "text/html; charset=utf-8"),
    asset!("redoc.html", "text/html; charset=utf-8"),
    asset!("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    asset!("swagger-ui.css", "text/css; charset=utf-8"),
    asset!("swagger-init.js", "text/javascript; charset=utf-8"),
    asset!("redoc.standalone.js", "text/javascript; charset=utf-8"),
    asset!("redoc-init.js", "text/javascript; charset=utf-8"),
];

/// The gzipped form of each asset, made on first request.
fn gzipped(i: usize) -> &'static [u8] {
    static GZ: [OnceLock<Vec<u8>>; ASSET_COUNT] = [const { OnceLock::new() }; ASSET_COUNT];
    GZ[i].get_or_init(|| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(ASSETS[i].bytes).expect("writing to memory");
        enc.finish().expect("writing to memory")
    })
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|part| {
            let mut it = part.split(';');
            let coding = it.next().unwrap_or("").trim();
            let refused =
                it.any(|p| matches!(p.trim().replace(' ', "").as_str(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
    })
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.name == name) else {
        return super::error::ApiError::not_found(format!("no documentation asset '{name}'")).into_response();
    };
    let a = &ASSETS[i];
    let gzip = accepts_gzip(headers);
    let body = if gzip { gzipped(i) } else { a.bytes };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    // Pages revalidate (they name the assets); assets change only with the binary.
    let cache = if a.content_type == HTML { "no-cache" } else { "public, max-age=86400" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    let policy = if a.name.starts_with("redoc") { REDOC_POLICY } else { SWAGGER_POLICY };
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    res
}

async fn swagger(headers: HeaderMap) -> Response {
    serve("swagger.html", &headers)
}

async fn redoc(headers: HeaderMap) -> Response {
    serve("redoc.html", &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    // Pages are reached by their own paths, not as assets.
    if name.ends_with(".html") {
        return super::error::ApiError::not_found(format!("no documentation asset '{name}'")).into_response();
    }
    serve(&name, &headers)
}

/// The documentation pages and their assets. Not API operations, so not in the route
/// table or the OpenAPI document.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(swagger))
        .route("/swagger", get(swagger))
        .route("/api/schema/swagger-ui", get(swagger))
        .route("/redoc", get(redoc))
        .route("/api/schema/redoc", get(redoc))
        .route("/docs/assets/{name}", get(asset))
}

/// Every asset a page may reference, for the tests.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name).filter(|n| !n.ends_with(".html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, gzip;q=0.8"));
        assert!(!with("gzip;q=0"));
        assert!(!with("br"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
