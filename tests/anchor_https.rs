//! Anchoring over HTTPS against a real local consultation service started
//! by the test: an HTTP server implementing docs/FORMAT.md, "Anchoring
//! over HTTPS" — it checks each request's Standard Webhooks signature with
//! the secret it shares with the gateway (random, made by the test), checks
//! the tree head opens under the gateway key it names, keeps heads per
//! gateway, answers 409 to a size not larger than its latest, and lists a
//! gateway's heads. The gateway anchors, reads the anchors back and checks
//! its local log against them.

mod common;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vitalgate::anchor::backend::{AnchorError, Head, Progress};
use vitalgate::anchor::https::{HttpsAnchorConfig, HttpsAnchorer, HttpsSetupError};
use vitalgate::deliver::signature::Secret;
use vitalgate_chain::TreeHead;
use vitalgate_chain::anchored::check_anchored;
use vitalgate_chain::crypto::keys::{IdentityKey, IdentityPublic};
use vitalgate_chain::merkle::{self, Hash};
use vitalgate_devices::Timestamp;

/// A log of `n` blocks (their leaf hashes).
fn log(n: u8) -> Vec<Hash> {
    (0..n).map(|i| merkle::leaf_hash(&[i])).collect()
}

/// The head of the first `size` leaves, signed by `key`.
fn head(key: &IdentityKey, leaves: &[Hash], size: u64, time: i64) -> Head {
    let signed = TreeHead {
        gateway: key.kid(),
        size,
        root: merkle::root(&leaves[..size as usize]),
        time: Timestamp(time),
    }
    .sign(key);
    Head::open(signed, &key.public()).unwrap()
}

fn random_secret() -> Secret {
    let mut bytes = vec![0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    Secret::new(bytes)
}

fn now_ms() -> i64 {
    Timestamp::now().millis()
}

/// One answer the service gives instead of its own, after a delay.
struct Canned {
    status: u16,
    body: Vec<u8>,
    delay: Duration,
}

fn canned(status: u16, body: impl Into<Vec<u8>>) -> Canned {
    Canned {
        status,
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// One head the service holds.
struct Stored {
    head: Head,
    id: String,
}

/// The consultation service: the shared secret, the heads per gateway
/// (hex), and answers queued to be given before its own.
struct Service {
    secret: Secret,
    heads: Mutex<HashMap<String, Vec<Stored>>>,
    canned: Mutex<VecDeque<Canned>>,
    receipts: Mutex<u64>,
}

impl Service {
    fn new(secret: Secret) -> Arc<Service> {
        Arc::new(Service {
            secret,
            heads: Mutex::default(),
            canned: Mutex::default(),
            receipts: Mutex::new(0),
        })
    }

    fn queue(&self, answers: impl IntoIterator<Item = Canned>) {
        self.canned.lock().unwrap().extend(answers);
    }

    async fn canned(&self) -> Option<Response> {
        let next = self.canned.lock().unwrap().pop_front();
        let c = next?;
        tokio::time::sleep(c.delay).await;
        Some((StatusCode::from_u16(c.status).unwrap(), c.body).into_response())
    }

    /// The Standard Webhooks check: the signature of `id.timestamp.body`
    /// with the shared secret, a timestamp within five minutes, and the
    /// id the request should carry.
    fn verify(
        &self,
        headers: &HeaderMap,
        want_id: &str,
        body: &[u8],
    ) -> Result<(), (StatusCode, String)> {
        let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
        let (id, ts, sig) = (
            h("webhook-id"),
            h("webhook-timestamp"),
            h("webhook-signature"),
        );
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", body];
        if !self.secret.verify(&parts, sig) {
            return Err((StatusCode::UNAUTHORIZED, "signature does not verify".into()));
        }
        let fresh = ts
            .parse::<i64>()
            .is_ok_and(|t| (t - now_ms() / 1000).abs() <= 300);
        if !fresh {
            return Err((StatusCode::UNAUTHORIZED, "stale timestamp".into()));
        }
        if id != want_id {
            return Err((StatusCode::BAD_REQUEST, format!("webhook-id {id}")));
        }
        Ok(())
    }
}

async fn post_anchor(
    State(service): State<Arc<Service>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(answer) = service.canned().await {
        return answer;
    }
    let Ok(head) = serde_json::from_slice::<Head>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a tree head").into_response();
    };
    let gateway = alloy::hex::encode(head.gateway);
    let id = format!("{gateway}-{}", head.size);
    if let Err(refused) = service.verify(&headers, &id, &body) {
        return refused.into_response();
    }
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    if h("content-type") != Some("application/json") || h("idempotency-key") != Some(&id) {
        return (StatusCode::BAD_REQUEST, "headers").into_response();
    }
    // The service keeps only heads the gateway signed, as they say.
    let opens = IdentityPublic::from_bytes(&head.gateway)
        .ok()
        .and_then(|key| Head::open(head.signed.clone(), &key).ok());
    if opens.as_ref() != Some(&head) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "the tree head does not verify",
        )
            .into_response();
    }
    let mut heads = service.heads.lock().unwrap();
    let list = heads.entry(gateway).or_default();
    if let Some(latest) = list.last().map(|s| s.head.size)
        && head.size <= latest
    {
        let body = serde_json::json!({ "latest": latest }).to_string();
        return (StatusCode::CONFLICT, body).into_response();
    }
    let id = {
        let mut n = service.receipts.lock().unwrap();
        *n += 1;
        format!("rcpt-{n}")
    };
    list.push(Stored {
        head,
        id: id.clone(),
    });
    let body = serde_json::json!({ "id": id, "status": "anchored" }).to_string();
    (StatusCode::CREATED, body).into_response()
}

async fn list_anchors(
    State(service): State<Arc<Service>>,
    Path(gateway): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(answer) = service.canned().await {
        return answer;
    }
    if let Err(refused) = service.verify(&headers, &format!("{gateway}-list"), b"") {
        return refused.into_response();
    }
    let heads = service.heads.lock().unwrap();
    let list: Vec<serde_json::Value> = heads
        .get(&gateway)
        .into_iter()
        .flatten()
        .map(|s| {
            serde_json::json!({
                "size": s.head.size,
                "root": alloy::hex::encode(s.head.root),
                "time": s.head.time,
                "signed": alloy::hex::encode(&s.head.signed),
                "id": s.id,
            })
        })
        .collect();
    (StatusCode::OK, serde_json::Value::from(list).to_string()).into_response()
}

/// Serve `service` on 127.0.0.1:`port` (0: any) until the token is
/// cancelled; the port it listens on.
async fn serve(service: Arc<Service>, port: u16) -> (u16, CancellationToken) {
    let app = axum::Router::new()
        .route("/anchors", axum::routing::post(post_anchor))
        .route("/anchors/{gateway}", axum::routing::get(list_anchors))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    let cancelled = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(cancelled)
            .await
            .unwrap();
    });
    (port, stop)
}

fn anchorer(port: u16, secret: Secret) -> HttpsAnchorer {
    HttpsAnchorer::new(HttpsAnchorConfig {
        url: format!("http://127.0.0.1:{port}/anchors"),
        secret,
        ca_file: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// A service with a fresh secret, and a gateway holding it.
async fn service_and_gateway() -> (Arc<Service>, HttpsAnchorer, CancellationToken) {
    let secret = random_secret();
    let service = Service::new(secret.clone());
    let (port, stop) = serve(Arc::clone(&service), 0).await;
    (service, anchorer(port, secret), stop)
}

fn anchored_id(progress: Progress) -> String {
    match progress {
        Progress::Anchored(receipt) => receipt.id,
        other => panic!("not anchored: {other:?}"),
    }
}

#[tokio::test]
async fn heads_anchored_and_read_back_agree_with_the_local_log() {
    let (_service, gateway, _stop) = service_and_gateway().await;
    let key = IdentityKey::generate().unwrap();
    let leaves = log(12);
    let mut ids = Vec::new();
    for (size, time) in [
        (3, 1_700_000_000_000),
        (7, 1_700_000_600_000),
        (12, 1_700_001_200_000),
    ] {
        let head = head(&key, &leaves, size, time);
        let now = now_ms();
        match gateway.submit(&head, now).await.unwrap() {
            Progress::Anchored(receipt) => {
                assert_eq!(
                    (receipt.size, receipt.confirmations, receipt.at),
                    (size, 0, now)
                );
                assert_eq!(receipt.block_number, None);
                ids.push(receipt.id);
            }
            other => panic!("size {size}: {other:?}"),
        }
    }
    assert_eq!(ids, ["rcpt-1", "rcpt-2", "rcpt-3"]);

    let anchors = gateway.anchors(&key.public().to_bytes()).await.unwrap();
    assert_eq!(
        anchors.iter().map(|a| a.size).collect::<Vec<_>>(),
        [3, 7, 12]
    );
    assert_eq!(
        anchors[1].location,
        format!("receipt rcpt-2 from {}", gateway.url())
    );
    let report = check_anchored(&leaves, &key.public(), &anchors);
    assert!(report.all_agree(), "{report}");
    assert_eq!((report.checked, report.agreeing), (3, 3));

    // The anchors are what a rewritten log is caught with.
    let mut rewritten = leaves.clone();
    rewritten[5] = merkle::leaf_hash(b"rewritten");
    let report = check_anchored(&rewritten, &key.public(), &anchors);
    let divergence = report.first_divergence.expect("the rewrite is seen");
    assert_eq!(divergence.anchor.size, 7);
    assert_eq!(divergence.from_height(), 3);

    // Another gateway has none.
    let other = IdentityKey::generate().unwrap();
    assert_eq!(
        gateway.anchors(&other.public().to_bytes()).await.unwrap(),
        []
    );
}

#[tokio::test]
async fn the_same_size_again_is_superseded_by_what_the_service_holds() {
    let (_service, gateway, _stop) = service_and_gateway().await;
    let key = IdentityKey::generate().unwrap();
    let leaves = log(8);
    let five = head(&key, &leaves, 5, 1_700_000_000_000);
    anchored_id(gateway.submit(&five, now_ms()).await.unwrap());
    // A retry of the same head (its answer lost), then an older head.
    assert_eq!(
        gateway.submit(&five, now_ms()).await.unwrap(),
        Progress::Superseded { latest: 5 }
    );
    let three = head(&key, &leaves, 3, 1_700_000_001_000);
    assert_eq!(
        gateway.submit(&three, now_ms()).await.unwrap(),
        Progress::Superseded { latest: 5 }
    );
    let eight = head(&key, &leaves, 8, 1_700_000_002_000);
    anchored_id(gateway.submit(&eight, now_ms()).await.unwrap());
    let anchors = gateway.anchors(&key.public().to_bytes()).await.unwrap();
    assert_eq!(anchors.iter().map(|a| a.size).collect::<Vec<_>>(), [5, 8]);
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_says_to_check_the_secret_file() {
    let service = Service::new(random_secret());
    let (port, _stop) = serve(Arc::clone(&service), 0).await;
    let gateway = anchorer(port, random_secret());
    let key = IdentityKey::generate().unwrap();
    let head = head(&key, &log(2), 2, 1_700_000_000_000);
    let e = gateway.submit(&head, now_ms()).await.unwrap_err();
    assert!(matches!(e, AnchorError::Refused { .. }), "{e}");
    assert!(!e.is_transient());
    let text = e.to_string();
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(text.contains("check anchor.https.secret_file"), "{text}");
    assert!(text.contains("signature does not verify"), "{text}");
    let e = gateway.anchors(&head.gateway).await.unwrap_err();
    assert!(e.to_string().contains("secret_file"), "{e}");
    assert!(service.heads.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_tree_head_the_gateway_did_not_sign_is_refused_by_the_service() {
    let (_service, gateway, _stop) = service_and_gateway().await;
    let key = IdentityKey::generate().unwrap();
    let other = IdentityKey::generate().unwrap();
    let leaves = log(4);
    let mut forged = head(&other, &leaves, 4, 1_700_000_000_000);
    forged.gateway = key.public().to_bytes();
    let e = gateway.submit(&forged, now_ms()).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.to_string().contains("HTTP 422"), "{e}");
    assert!(e.to_string().contains("identity key"), "{e}");
}

#[tokio::test]
async fn the_service_down_is_unavailable_then_started_on_that_port_it_succeeds() {
    let port = common::free_port();
    let secret = random_secret();
    let gateway = anchorer(port, secret.clone());
    let key = IdentityKey::generate().unwrap();
    let head = head(&key, &log(3), 3, 1_700_000_000_000);
    let e = gateway.submit(&head, now_ms()).await.unwrap_err();
    assert!(matches!(e, AnchorError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("cannot connect"), "{e}");
    assert!(
        gateway
            .anchors(&head.gateway)
            .await
            .unwrap_err()
            .is_transient()
    );

    let (_, _stop) = serve(Service::new(secret), port).await;
    anchored_id(gateway.submit(&head, now_ms()).await.unwrap());
    assert_eq!(gateway.anchors(&head.gateway).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_service_answering_500_then_200_is_unavailable_then_anchored() {
    let (service, gateway, _stop) = service_and_gateway().await;
    let key = IdentityKey::generate().unwrap();
    let head = head(&key, &log(3), 3, 1_700_000_000_000);
    service.queue([canned(500, "database is down")]);
    let e = gateway.submit(&head, now_ms()).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert!(e.to_string().contains("database is down"), "{e}");
    assert_eq!(
        anchored_id(gateway.submit(&head, now_ms()).await.unwrap()),
        "rcpt-1"
    );
}

#[tokio::test]
async fn a_service_that_does_not_answer_in_time_is_unavailable() {
    let secret = random_secret();
    let service = Service::new(secret.clone());
    let (port, _stop) = serve(Arc::clone(&service), 0).await;
    let gateway = HttpsAnchorer::new(HttpsAnchorConfig {
        url: format!("http://127.0.0.1:{port}/anchors"),
        secret,
        ca_file: None,
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    service.queue([Canned {
        status: 201,
        body: br#"{"id":"late"}"#.to_vec(),
        delay: Duration::from_secs(3),
    }]);
    let key = IdentityKey::generate().unwrap();
    let head = head(&key, &log(1), 1, 1_700_000_000_000);
    let e = gateway.submit(&head, now_ms()).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(e.to_string().contains("timed out"), "{e}");
}

#[tokio::test]
async fn garbage_bodies_never_panic() {
    let (service, gateway, _stop) = service_and_gateway().await;
    let key = IdentityKey::generate().unwrap();
    let head = head(&key, &log(3), 3, 1_700_000_000_000);
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let huge = vec![b'x'; 3 * 1024 * 1024];
    let answers = || {
        vec![
            canned(200, ""),
            canned(200, "ok"),
            canned(201, "[]"),
            canned(200, r#"{"id":17}"#),
            canned(200, r#"{"id":"#),
            canned(201, binary.clone()),
            canned(200, huge.clone()),
            canned(202, r#"{"id":"x"}"#),
            canned(409, "{}"),
            canned(409, r#"{"latest":-4}"#),
            canned(409, r#"{"latest":2}"#),
            canned(400, binary.clone()),
            canned(401, huge.clone()),
            canned(418, "\u{0}\u{1b}[31mteapot"),
            canned(503, huge.clone()),
        ]
    };
    let n = answers().len();
    service.queue(answers());
    for i in 0..n {
        let result = gateway.submit(&head, now_ms()).await;
        let e = result.expect_err("no garbage anchors");
        let text = e.to_string();
        assert!(text.len() < 1000, "answer {i}: {} bytes", text.len());
        assert!(!text.contains('\u{1b}'), "answer {i}: {text}");
        if i <= 10 {
            assert!(e.is_transient(), "answer {i}: {text}");
        }
    }
    let lists = [
        canned(200, ""),
        canned(200, "{}"),
        canned(200, "[1,2]"),
        canned(200, r#"[{"size":1}]"#),
        canned(
            200,
            r#"[{"size":1,"root":"zz","time":0,"signed":"","id":"a"}]"#,
        ),
        canned(200, binary.clone()),
        canned(200, huge.clone()),
        canned(204, ""),
        canned(500, binary.clone()),
    ];
    let n = lists.len();
    service.queue(lists);
    for i in 0..n {
        let e = gateway.anchors(&head.gateway).await.unwrap_err();
        assert!(e.is_transient(), "list answer {i}: {e}");
    }
    // And the service, behaving again, anchors it.
    anchored_id(gateway.submit(&head, now_ms()).await.unwrap());
}

#[test]
fn http_to_a_host_other_than_this_machine_is_refused_at_construction() {
    for url in [
        "http://anchors.hospital.example/anchors",
        "http://10.0.0.7:8080/anchors",
        "http://[2001:db8::1]/anchors",
    ] {
        let e = HttpsAnchorer::new(HttpsAnchorConfig {
            url: url.into(),
            secret: random_secret(),
            ca_file: None,
            timeout: Duration::from_secs(5),
        })
        .unwrap_err();
        assert!(matches!(e, HttpsSetupError::Insecure { .. }), "{url}: {e}");
        let text = e.to_string();
        assert!(text.contains(url), "{text}");
        assert!(text.contains("https://"), "{text}");
    }
}

#[tokio::test]
async fn the_anchor_stage_coalesces_heads_while_the_service_is_down_and_sends_only_the_newest() {
    use tokio::sync::watch;
    use vitalgate::anchor::outbox::{AnchorOutbox, OutboxState};
    use vitalgate::anchor::{AnchorStage, BackendConfig, Pace};
    use vitalgate::clock::Clock;
    use vitalgate::store::StoreSnapshot;

    let (service, gateway, _stop) = service_and_gateway().await;
    // Down: every request answered 503 until the queue runs out.
    service.queue((0..3).map(|_| canned(503, "maintenance")));
    let key = IdentityKey::generate().unwrap();
    let leaves = log(9);
    let (stage, mut anchors) = AnchorStage::new(
        Pace {
            interval: Duration::ZERO,
            poll: Duration::from_millis(50),
            replace_after: Duration::from_secs(60),
        },
        BackendConfig::Https(Box::new(gateway)),
        (AnchorOutbox::in_memory(), OutboxState::default()),
        key.public(),
        Clock::System,
    );
    let (store, store_rx) = watch::channel(StoreSnapshot::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(stage.run(store_rx, cancel.clone()));
    // Heads 1 to 5 sealed while the service refuses.
    for size in 1..=5u64 {
        let signed = head(&key, &leaves, size, now_ms()).signed;
        store.send_modify(|s| s.tree_head = Some(signed.into()));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let done = common::wait_for(&mut anchors, 30, "head 5 anchored", |a| {
        a.anchored_size == 5
    })
    .await;
    assert!(done.failures >= 1, "{done:?}");
    // Then a newer head goes as soon as it is sealed (interval 0).
    let signed = head(&key, &leaves, 9, now_ms()).signed;
    store.send_modify(|s| s.tree_head = Some(signed.into()));
    common::wait_for(&mut anchors, 30, "head 9 anchored", |a| {
        a.anchored_size == 9
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    let heads = service.heads.lock().unwrap();
    let sizes: Vec<u64> = heads
        .values()
        .flat_map(|list| list.iter().map(|s| s.head.size))
        .collect();
    assert_eq!(sizes, [5, 9], "the backlog went out as its newest head");
}
