//! External issuers with RS256 and ES256 keys from a JWKS file: the key named by `kid`
//! fixes the algorithm; `iss` and `aud` are checked.

use crate::helpers::*;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Makes an RSA and a P-256 key pair; returns their private keys (DER) and the public JWKS.
fn keys(dir: &Path) -> (Vec<u8>, Vec<u8>, Value) {
    let rsa = dir.join("rsa.pem");
    let ec = dir.join("ec.pem");
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", rsa.to_str().unwrap()]);
    openssl(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", ec.to_str().unwrap()]);
    let modulus = String::from_utf8(openssl(&["rsa", "-in", rsa.to_str().unwrap(), "-noout", "-modulus"])).unwrap();
    let n = hex_bytes(modulus.trim().strip_prefix("Modulus=").unwrap());
    // The DER of a P-256 public key ends with the point 04 || x || y.
    let der = openssl(&["pkey", "-in", ec.to_str().unwrap(), "-pubout", "-outform", "DER"]);
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64url(&n), "e": "AQAB"},
        {"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": b64url(&point[1..33]), "y": b64url(&point[33..])},
    ]});
    let rsa_der = openssl(&["rsa", "-in", rsa.to_str().unwrap(), "-traditional", "-outform", "DER"]);
    let ec_der = openssl(&["pkcs8", "-topk8", "-nocrypt", "-in", ec.to_str().unwrap(), "-outform", "DER"]);
    (rsa_der, ec_der, jwks)
}

fn claims(iss: &str, aud: &str) -> Value {
    json!({"sub": "ext-user", "exp": Utc::now().timestamp() + 600, "role": "viewer", "tenant_id": "ext", "iss": iss, "aud": aud})
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    encode(&h, claims, key).unwrap()
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_the_jwks_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let (rsa_der, ec_der, jwks) = keys(dir.path());
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let mut cfg = config(None);
    cfg.jwks_file = Some(jwks_path);
    cfg.jwt_issuer = Some("https://auth.example.com".into());
    cfg.jwt_audience = Some("sightline".into());
    let app = TestApp::with_config(cfg).await;
    let rsa = EncodingKey::from_rsa_der(&rsa_der);
    let ec = EncodingKey::from_ec_der(&ec_der);
    let good = claims("https://auth.example.com", "sightline");
    let me = |t: String| send(app.get("/api/v1/auth/me").bearer_auth(t));

    for t in [sign(Algorithm::RS256, Some("rsa-1"), &rsa, &good), sign(Algorithm::ES256, Some("ec-1"), &ec, &good)] {
        let (s, b, _) = me(t).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            (b["tenant_id"].as_str(), b["role"].as_str(), b["auth_method"].as_str()),
            (Some("ext"), Some("viewer"), Some("jwt"))
        );
    }
    let bad: Vec<(&str, String)> = vec![
        ("wrong issuer", sign(Algorithm::RS256, Some("rsa-1"), &rsa, &claims("https://evil.example.com", "sightline"))),
        ("wrong audience", sign(Algorithm::ES256, Some("ec-1"), &ec, &claims("https://auth.example.com", "other"))),
        ("unknown kid", sign(Algorithm::RS256, Some("rsa-9"), &rsa, &good)),
        ("no kid with two keys", sign(Algorithm::RS256, None, &rsa, &good)),
        // The RSA key's kid on an ES256 token: the key fixes the algorithm.
        ("algorithm not the key's", sign(Algorithm::ES256, Some("rsa-1"), &ec, &good)),
        // HS256 signed with the RSA public key's bytes: the classic confusion.
        (
            "HS256 with the public key",
            sign(
                Algorithm::HS256,
                Some("rsa-1"),
                &EncodingKey::from_secret(jwks["keys"][0]["n"].as_str().unwrap().as_bytes()),
                &good,
            ),
        ),
        ("RS384", sign(Algorithm::RS384, Some("rsa-1"), &rsa, &good)),
        (
            "alg none",
            format!("{}.{}.", b64url(br#"{"alg":"none","kid":"rsa-1"}"#), b64url(good.to_string().as_bytes())),
        ),
    ];
    for (case, t) in bad {
        let got = me(t).await;
        let p = assert_problem(&got, 401);
        eprintln!("{case}: {}", p["detail"]);
    }
    // The shared-secret HS256 tokens still work beside the JWKS.
    assert_eq!(me(admin()).await.0, 200);
}

#[tokio::test]
async fn a_bad_jwks_file_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, r#"{"keys": [{"kty": "oct", "kid": "x", "k": "c2VjcmV0"}]}"#).unwrap();
    let mut cfg = config(None);
    cfg.jwks_file = Some(path);
    let err = sightline::app::App::build(cfg).await.err().expect("refused").to_string();
    assert!(err.contains("jwks_file"), "{err}");
}

#[tokio::test]
async fn claim_names_are_configurable() {
    let mut cfg = config(None);
    cfg.jwt_roles_claim = "groups".into();
    cfg.jwt_tenant_claim = "org".into();
    let app = TestApp::with_config(cfg).await;
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let t = sign(
        Algorithm::HS256,
        None,
        &key,
        &json!({"sub": "x", "exp": Utc::now().timestamp() + 600, "groups": ["analyst"], "org": "org-7"}),
    );
    let (s, me, _) = send(app.get("/api/v1/auth/me").bearer_auth(t)).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!((me["tenant_id"].as_str(), me["role"].as_str()), (Some("org-7"), Some("analyst")));
    // The standard names still work (this server's own tokens use them).
    assert_eq!(send(app.get("/api/v1/auth/me").bearer_auth(token("viewer", Some("t")))).await.1["tenant_id"], "t");
}

#[tokio::test]
async fn a_jwks_url_is_fetched_again_when_an_issuer_rotates_its_keys() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let (rsa_der, ec_der, full) = keys(dir.path());
    // At first the issuer publishes only its RSA key.
    let served = Arc::new(Mutex::new(json!({"keys": [full["keys"][0].clone()]})));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s2, f2) = (served.clone(), fetches.clone());
    let router = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let (s, f) = (s2.clone(), f2.clone());
            async move {
                f.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                axum::Json(s.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let mut cfg = config(None);
    cfg.jwks_url = Some(url);
    cfg.jwks_refetch_secs = 0;
    let app = TestApp::with_config(cfg).await;
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "fetched at start");
    let good = claims("any", "any");
    let rsa = EncodingKey::from_rsa_der(&rsa_der);
    let ec = EncodingKey::from_ec_der(&ec_der);
    let me = |t: String| send(app.get("/api/v1/auth/me").bearer_auth(t));
    assert_eq!(me(sign(Algorithm::RS256, Some("rsa-1"), &rsa, &good)).await.0, 200);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "a known kid needs no fetch");
    // An unknown kid: fetched again, still unknown, refused.
    assert_problem(&me(sign(Algorithm::ES256, Some("ec-1"), &ec, &good)).await, 401);
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The issuer rotates in its EC key: the next token with it works.
    *served.lock().unwrap() = full.clone();
    let (s, b, _) = me(sign(Algorithm::ES256, Some("ec-1"), &ec, &good)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 3);
}
