//! The HTTP/1.1 keep-alive pool against small servers on loopback that count their
//! connections and misbehave on purpose: reuse, servers that close, concurrency, a port with
//! nothing behind it, answers cut short.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use hookbench::client::http::TransportKind;
use hookbench::client::{Bearer, Exchange, HttpClient, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the test server ends each exchange.
#[derive(Clone, Copy, PartialEq)]
enum Close {
    /// Keep the connection open.
    Never,
    /// Answer, then close without saying so (a keep-alive timeout on the server).
    Silently,
    /// Close after the head and half the promised body.
    MidBody,
}

struct Server {
    url: Url,
    accepted: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// Reads one request (head and `content-length` body); `None` at EOF.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..end + 4 + len);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn server(close: Close) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            a.fetch_add(1, SeqCst);
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(head) = read_request(&mut s, &mut buf).await {
                    r.fetch_add(1, SeqCst);
                    assert!(head.to_ascii_lowercase().contains("\r\nhost: 127.0.0.1:"));
                    assert!(
                        head.starts_with("POST /hook?x=1 HTTP/1.1")
                            || head.starts_with("GET /hook?x=1 HTTP/1.1")
                    );
                    let body = br#"{"data":[]}"#;
                    let mut resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    // One write: a head and body written apart wait on Nagle and delayed ACKs.
                    let whole = close != Close::MidBody;
                    resp.extend_from_slice(if whole { &body[..] } else { &body[..4] });
                    if s.write_all(&resp).await.is_err() || !whole || close == Close::Silently {
                        return;
                    }
                }
            });
        }
    });
    Server {
        url: Url::parse(&format!("http://{addr}/hook?x=1")).unwrap(),
        accepted,
        requests,
    }
}

fn bearer() -> Bearer {
    Bearer::new("a.b.c").unwrap()
}

const T: Duration = Duration::from_secs(5);

/// POSTs `{}` and checks the answer is a 200.
async fn post(http: &HttpClient, url: &Url) -> Exchange {
    let ex = http
        .post_json(url, &bearer(), bytes::Bytes::from_static(b"{}"), T)
        .await
        .unwrap();
    assert_eq!(ex.status, 200);
    ex
}

/// `users` concurrent users sharing `http`, each posting `each` times in a row.
async fn concurrent(http: &HttpClient, url: &Url, users: usize, each: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..users {
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            for _ in 0..each {
                post(&http, &url).await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let s = server(Close::Never).await;
    let http = HttpClient::new();
    for _ in 0..25 {
        let ex = post(&http, &s.url).await;
        assert_eq!(&ex.body[..], br#"{"data":[]}"#);
        assert!(ex.first_byte <= ex.total);
    }
    let ex = http.get(&s.url, &bearer(), T).await.unwrap();
    assert_eq!(ex.status, 200);
    assert_eq!(s.requests.load(SeqCst), 26);
    assert_eq!(s.accepted.load(SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_without_failing_a_request() {
    let s = server(Close::Silently).await;
    let http = HttpClient::new();
    for _ in 0..10 {
        post(&http, &s.url).await;
        // Give the close time to arrive on some turns and not on others.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(s.requests.load(SeqCst), 10);
    assert_eq!(s.accepted.load(SeqCst), 10);
}

#[tokio::test]
async fn concurrent_users_open_no_more_connections_than_requests_in_flight() {
    let s = server(Close::Never).await;
    let http = HttpClient::new();
    concurrent(&http, &s.url, 16, 20).await;
    assert_eq!(s.requests.load(SeqCst), 320);
    let conns = s.accepted.load(SeqCst);
    assert!(
        (1..=16).contains(&conns),
        "{conns} connections for 16 users"
    );
}

#[tokio::test]
async fn a_user_with_its_own_client_keeps_its_own_connection() {
    let s = server(Close::Never).await;
    let shared = HttpClient::new();
    let (a, b) = (shared.fresh(), shared.fresh());
    for _ in 0..5 {
        post(&a, &s.url).await;
        post(&b, &s.url).await;
    }
    assert_eq!(s.accepted.load(SeqCst), 2);
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = HttpClient::new()
        .post_json(
            &Url::parse(&format!("http://{addr}/x")).unwrap(),
            &bearer(),
            bytes::Bytes::from_static(b"{}"),
            T,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, TransportKind::Refused, "{e}");
}

#[tokio::test]
async fn an_answer_cut_short_is_a_reset() {
    let s = server(Close::MidBody).await;
    let e = HttpClient::new()
        .post_json(&s.url, &bearer(), bytes::Bytes::from_static(b"{}"), T)
        .await
        .unwrap_err();
    assert_eq!(e.kind, TransportKind::Reset, "{e}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let (_s, _) = l.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let e = HttpClient::new()
        .post_json(
            &Url::parse(&format!("http://{addr}/x")).unwrap(),
            &bearer(),
            bytes::Bytes::from_static(b"{}"),
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, TransportKind::TimedOut, "{e}");
    hold.abort();
}

#[test]
fn urls_are_parsed_once_with_their_errors_named() {
    let u = Url::parse("http://127.0.0.1:9/chatbot/v2/webhook/st-1?x=1").unwrap();
    assert_eq!(u.as_str(), "http://127.0.0.1:9/chatbot/v2/webhook/st-1?x=1");
    assert!(Url::parse("https://bots.example.com/chatbot/v2/webhook/st-1").is_ok());
    for bad in [
        "http://",
        "ftp://example.com/x",
        "/relative",
        "http://exa mple.com/",
    ] {
        let e = Url::parse(bad).unwrap_err();
        assert_eq!(e.kind, TransportKind::Other, "{bad}: {e}");
        assert!(e.message.contains("bad URL"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn at_the_connection_limit_requests_wait_for_a_free_connection() {
    let s = server(Close::Never).await;
    let http = HttpClient::new().with_connection_limit(2);
    assert_eq!(http.connection_limit(), 2);
    concurrent(&http, &s.url, 8, 10).await;
    assert_eq!(s.requests.load(SeqCst), 80);
    assert!(
        s.accepted.load(SeqCst) <= 2,
        "{} connections",
        s.accepted.load(SeqCst)
    );
    assert!(http.connection_waits() > 0);
}

#[tokio::test]
async fn a_limited_pool_frees_the_slot_of_a_connection_the_server_closed() {
    let s = server(Close::Silently).await;
    let http = HttpClient::new().with_connection_limit(1);
    for _ in 0..5 {
        post(&http, &s.url).await;
    }
    assert_eq!(s.accepted.load(SeqCst), 5);
}

#[test]
fn the_default_limit_follows_the_descriptor_limit() {
    let limit = hookbench::client::pool::default_limit();
    assert!(limit >= 16, "{limit}");
    assert!(HttpClient::new().connection_limit() == limit);
}

#[tokio::test]
async fn at_the_limit_an_idle_connection_to_another_host_gives_up_its_slot() {
    let (a, b) = (server(Close::Never).await, server(Close::Never).await);
    let http = HttpClient::new().with_connection_limit(1);
    for url in [&a.url, &b.url, &a.url] {
        tokio::time::timeout(Duration::from_secs(5), post(&http, url))
            .await
            .expect("no deadlock at the limit");
    }
    assert_eq!(a.accepted.load(SeqCst), 2);
    assert_eq!(b.accepted.load(SeqCst), 1);
}
