//! Extractors that fail as problems, with a detail that says exactly what was wrong,
//! instead of axum's plain-text rejections.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sightline_core::code::Code;

/// A JSON body. Refuses a missing or foreign content type (415), a body over the route's
/// limit (413), and text that is not JSON or not of the expected shape (400), naming the
/// line and column.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if !(mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))) {
            let got = if ctype.is_empty() { "no Content-Type".to_owned() } else { format!("Content-Type '{ctype}'") };
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!("expected Content-Type: application/json, got {got}"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        if bytes.is_empty() {
            return Err(ApiError::new(Code::MalformedBody, "the request body is empty; expected a JSON document"));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            let what = match e.classify() {
                serde_json::error::Category::Data => "the JSON does not have the expected shape",
                _ => "the body is not valid JSON",
            };
            ApiError::new(Code::MalformedBody, format!("{what}: {e}"))
        })?;
        Ok(ApiJson(value))
    }
}

fn body_rejection(e: BytesRejection) -> ApiError {
    let text = e.body_text();
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(Code::PayloadTooLarge, "the request body is larger than this endpoint accepts")
    } else {
        ApiError::new(Code::MalformedBody, format!("could not read the request body: {text}"))
    }
}

/// Query parameters; a bad one is a 400 naming it.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(q) => Ok(ApiQuery(q.0)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    let text = e.body_text();
    let text = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text);
    ApiError::new(Code::Validation, format!("invalid query parameter: {text}"))
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(p) => Ok(ApiPath(p.0)),
            Err(e) => Err(path_rejection(e)),
        }
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    ApiError::new(Code::Validation, format!("invalid path parameter: {}", e.body_text()))
}

/// A form-encoded body (`application/x-www-form-urlencoded`), as OAuth2's password flow
/// sends it.
pub struct ApiForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ctype = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if mime != "application/x-www-form-urlencoded" {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!("expected Content-Type: application/x-www-form-urlencoded, got '{ctype}'"),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        serde_urlencoded::from_bytes(&bytes)
            .map(ApiForm)
            .map_err(|e| ApiError::new(Code::Validation, format!("invalid form body: {e}")))
    }
}

/// The address of the client's connection (proxies' forwarding headers are not trusted).
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip().to_string()),
        ))
    }
}
