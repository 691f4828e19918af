//! The listener's limits against clients that stall: half a header, a stalled body, more
//! connections than the cap.

use crate::helpers::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app_with(header_secs: u64, body_secs: u64, max_connections: usize) -> TestApp {
    let mut cfg = config(None);
    cfg.header_read_timeout_secs = header_secs;
    cfg.body_read_timeout_secs = body_secs;
    cfg.max_connections = max_connections;
    TestApp::with_config(cfg).await
}

/// Reads until the server closes the connection; what it sent, and how long that took.
async fn until_closed(s: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open past {limit:?}"),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), started.elapsed())
}

#[tokio::test]
async fn half_a_header_is_cut_off_after_the_header_timeout() {
    let app = app_with(1, 30, 100).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let (_, took) = until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "closed after {took:?}");
    // A whole request on a new connection still works.
    let (status, _, _) = send(app.get("/live")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_but_a_busy_one_is_served() {
    let app = app_with(1, 30, 100).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    for _ in 0..3 {
        s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served on the same connection");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (_, took) = until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "idle connection closed after {took:?}");
}

#[tokio::test]
async fn a_stalled_body_fails_the_request_after_the_body_timeout() {
    let app = app_with(10, 1, 100).await;
    let mut s = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/token/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"{\"username\":").await.unwrap();
    let (answer, took) = until_closed(&mut s, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "ended after {took:?}");
    // Either a problem answer naming the body or a closed connection; never a hang.
    if !answer.is_empty() {
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = app_with(2, 30, 2).await;
    // Two connections that send nothing hold both slots until the header timeout.
    let idle: Vec<TcpStream> =
        vec![TcpStream::connect(app.addr).await.unwrap(), TcpStream::connect(app.addr).await.unwrap()];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (status, _, _) = send(app.get("/live")).await;
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert!(waited >= Duration::from_millis(1200), "the third connection was served at once ({waited:?})");
    assert!(waited < Duration::from_secs(8), "the third connection waited {waited:?}");
    drop(idle);
}
