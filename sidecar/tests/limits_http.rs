//! Hostile bodies and hostile connections (issue 11, defects 1, 2 and 5): every endpoint
//! family has its own caps, enforced before parsing; connections time out and are capped.
//! Every loop here is bounded by a count and every wait by a timeout.

mod common;

use std::time::Duration;

use common::TestApp;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest any test here waits for the server to act.
const PATIENCE: Duration = Duration::from_secs(15);

fn zstd(text: &[u8]) -> Vec<u8> {
    zstd::encode_all(text, 19).unwrap()
}

/// `prefix` + `count` copies of `item` joined by commas + `suffix`, compressed.
fn repeated(prefix: &str, item: &str, count: usize, suffix: &str) -> Vec<u8> {
    let mut text = String::with_capacity(prefix.len() + (item.len() + 1) * count + suffix.len());
    text.push_str(prefix);
    for i in 0..count {
        if i > 0 {
            text.push(',');
        }
        text.push_str(item);
    }
    text.push_str(suffix);
    zstd(text.as_bytes())
}

#[tokio::test]
async fn a_login_body_that_expands_past_the_login_cap_is_refused() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    // 8 MiB of username in a few hundred bytes. Before the login had its own cap, this was
    // parsed, checked against the database, stored and logged (a 403).
    let username = "a".repeat(8 << 20);
    let body = zstd(json!({"u": username, "p": "secret"}).to_string().as_bytes());
    assert!(body.len() < 4096, "{}", body.len());
    let response = app
        .raw("hostKey", Some(TestApp::header("", "login")), body)
        .await;
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(response.body.len() < 400, "the answer is short");
    // Just over the 64 KiB default is refused too, just under is an ordinary failed login.
    let over = zstd(
        json!({"u": "b".repeat(70_000), "p": "x"})
            .to_string()
            .as_bytes(),
    );
    let over = app
        .raw("hostKey", Some(TestApp::header("", "login")), over)
        .await;
    assert_eq!(over.status, 413);
    assert_eq!(app.login("alice", "secret").await.status, 200);
}

#[tokio::test]
async fn json_bombs_are_refused_on_every_json_family() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.start_sync(&key, "s", 0, false).await;
    // Two million items in a few KiB each: over the default item cap of one million.
    let zeros = 2_000_000;
    let bombs: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "sync",
            "sanityCheck2",
            repeated(r#"{"client":["#, "0", zeros, "]}"),
        ),
        (
            "sync",
            "applyGraves",
            repeated(r#"{"chunk":{"cards":["#, "0", zeros, "]}}"),
        ),
        (
            "sync",
            "applyChunk",
            repeated(r#"{"chunk":{"done":false,"cards":[["#, "0", zeros, "]]}}"),
        ),
        (
            "sync",
            "applyChanges",
            repeated(
                r#"{"changes":{"models":[],"decks":[[],[]],"tags":["#,
                r#""t""#,
                zeros,
                "]}}",
            ),
        ),
        (
            "sync",
            "meta",
            repeated(r#"{"v":11,"cv":"x","x":["#, "0", zeros, "]}"),
        ),
        (
            "msync",
            "downloadFiles",
            repeated(r#"{"files":["#, r#""a""#, zeros, "]}"),
        ),
        ("msync", "begin", repeated(r#"{"x":["#, "[]", zeros, "]}")),
    ];
    for (family, method, body) in bombs {
        assert!(body.len() < 64 * 1024, "{method}: {}", body.len());
        let session = if family == "msync" { "media" } else { "s" };
        let response = if family == "msync" {
            app.raw_media(method, Some(TestApp::header(&key, session)), body)
                .await
        } else {
            app.raw(method, Some(TestApp::header(&key, session)), body)
                .await
        };
        assert_eq!(response.status, 413, "{method}: {}", response.text());
    }
    // The sync is still open and works.
    let chunk = app.call("chunk", &key, "s", json!({"_pad": null})).await;
    assert_eq!(chunk.status, 200, "{}", chunk.text());
}

#[tokio::test]
async fn row_and_id_counts_are_capped_per_request() {
    let app = TestApp::start_with(&["--max-chunk-rows=10", "--max-grave-ids=10"]).await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    app.start_sync(&key, "s", 0, false).await;
    let ids: Vec<i64> = (1..=11).collect();
    let graves = app
        .call("applyGraves", &key, "s", json!({"chunk": {"cards": ids}}))
        .await;
    assert_eq!(graves.status, 413, "{}", graves.text());
    let rows: Vec<Value> = (0..11).map(|_| json!([1, 2])).collect();
    let chunk = app
        .apply_chunk(&key, "s", json!({"done": false, "revlog": rows}))
        .await;
    assert_eq!(chunk.status, 413, "{}", chunk.text());
    let few = app
        .call("applyGraves", &key, "s", json!({"chunk": {"cards": [1]}}))
        .await;
    assert_eq!(few.status, 200, "{}", few.text());
}

#[tokio::test]
async fn stateful_calls_without_a_sync_answer_409_before_reading_the_body() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    // Not even zstd: a server that read the body first would answer 400.
    for method in [
        "sanityCheck2",
        "applyGraves",
        "applyChunk",
        "applyChanges",
        "chunk",
        "finish",
    ] {
        let response = app
            .raw(
                method,
                Some(TestApp::header(&key, "none")),
                b"not zstd".to_vec(),
            )
            .await;
        assert_eq!(response.status, 409, "{method}: {}", response.text());
    }
}

#[tokio::test]
async fn a_wrong_typed_huge_string_is_not_echoed_back() {
    let app = TestApp::start().await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let body = zstd(
        json!({"v": "x".repeat(1 << 20), "cv": "x"})
            .to_string()
            .as_bytes(),
    );
    let response = app
        .raw("meta", Some(TestApp::header(&key, "s")), body)
        .await;
    assert_eq!(response.status, 400);
    assert!(response.body.len() < 1000, "{}", response.body.len());
}

/// Reads until the server closes the connection; returns what it sent, or None if it kept
/// the connection open for `PATIENCE`.
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    outcome.ok().map(|_| received)
}

#[tokio::test]
async fn silent_and_slow_connections_are_closed() {
    let app = TestApp::start_with(&[
        "--header-timeout-secs=1",
        "--idle-timeout-secs=1",
        "--body-timeout-secs=1",
    ])
    .await;
    let addr = app.public_address();

    // Connects and never sends a byte.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    assert!(
        read_until_closed(&mut silent).await.is_some(),
        "a silent socket is closed"
    );

    // Sends the headers one byte at a time, a little faster than the idle timeout.
    let mut slow_headers = TcpStream::connect(&addr).await.unwrap();
    let request =
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut closed = false;
    for byte in request.iter() {
        if slow_headers.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !closed {
        closed = read_until_closed(&mut slow_headers).await.is_some();
    }
    assert!(closed, "headers that never end are cut off");

    // Sends the headers, then the body one byte at a time.
    let mut slow_body = TcpStream::connect(&addr).await.unwrap();
    let header = TestApp::header("", "login");
    let head = format!(
        "POST /sync/hostKey HTTP/1.1\r\nHost: x\r\nanki-sync: {header}\r\nContent-Length: 1000\r\n\r\n"
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..40 {
        if slow_body.write_all(b"a").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answer = read_until_closed(&mut slow_body)
        .await
        .expect("a body that never ends is cut off");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A keep-alive connection left open after a request.
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut kept)
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    // And the server still serves.
    let health = app.public_get("/health").await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_and_recover_when_sockets_close() {
    let app = TestApp::start_with(&["--max-connections=4", "--header-timeout-secs=60"]).await;
    let addr = app.public_address();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Give the server a moment to accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap();
    let health_url = format!("{}/health", app.base);
    let health = tokio::spawn(async move { client.get(health_url).send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !health.is_finished(),
        "with every slot taken, a new client waits"
    );
    drop(idle);
    let health = health.await.unwrap().expect("served once sockets close");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn media_uploads_have_their_own_cap() {
    let app = TestApp::start_with(&["--media-max-body-mb=1"]).await;
    app.add_user("alice", true);
    let key = app.login_key("alice").await;
    let begin = app.media_begin(&key, "test,1").await;
    assert_eq!(begin.status, 200, "{}", begin.text());
    // 2 MiB of zeros in a few hundred bytes: past the media cap while decompressing.
    let bomb = zstd(&vec![0u8; 2 << 20]);
    let response = app
        .raw_media("uploadChanges", Some(TestApp::header(&key, "media")), bomb)
        .await;
    assert_eq!(response.status, 413, "{}", response.text());
}
