//! The database going away under traffic. PostgreSQL is reached through a
//! loopback proxy the test can cut (every connection dropped, new ones
//! refused) and restore; SQLite is opened read-only. While the store is down
//! health says NOT_SERVING, routing goes on from memory, new submissions are
//! refused with UNAVAILABLE and never acknowledged, and once the database is
//! back the writer catches up and nothing is lost.

mod common;

use common::centre::{Centre, SUPPORT, agent, support_queue};
use common::sessions::{BridgeClient, Report, interaction_request};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard::config::ServeConfig;
use switchboard::proto::v1 as pb;
use switchboard::store::records::EventKind as K;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const VOICE: pb::Channel = pb::Channel::Voice;

/// A TCP proxy on loopback in front of the database, which the test can cut.
struct Proxy {
    addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Starts forwarding a free loopback port to `target`.
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let refusing = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let (cut, open) = (refusing.clone(), connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let copy = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                open.lock().expect("not poisoned").push(copy.abort_handle());
            }
        })
        .abort_handle();
        Self {
            addr,
            refusing,
            connections,
            accept,
        }
    }

    /// The outage: every open connection is dropped, new ones are refused.
    fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }

    /// The database is reachable again.
    fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// Waits until the server's overall health is `wanted` (a hang guard of 30 s,
/// not a timing assertion).
async fn health_becomes(channel: Channel, wanted: ServingStatus) {
    let mut health = HealthClient::new(channel);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        if status == wanted as i32 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stayed {status}, expected {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits and expects UNAVAILABLE: nothing is acknowledged unstored.
async fn submit_refused(bridge: &mut BridgeClient, interaction: &str) {
    let request = interaction_request(interaction, VOICE, SUPPORT);
    let status = bridge
        .client
        .submit_interaction(request)
        .await
        .expect_err("a submission is refused while the store is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn a_postgres_outage_under_traffic_loses_nothing() {
    let Some(backend) = common::postgres().await else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432".parse().expect("an address")).await;
    let url = backend
        .url
        .replace("127.0.0.1:5432", &proxy.addr.to_string());
    assert_ne!(
        url, backend.url,
        "the test database is reached through the proxy"
    );
    let agents = vec![agent("alice", 3)];
    let centre =
        Centre::start_with(ServeConfig::ephemeral(&url), vec![support_queue()], agents).await;
    let mut bridge = centre.bridge().await;
    health_becomes(centre.server.channel().await, ServingStatus::Serving).await;
    let mut waiting = Vec::new();
    for n in 1..=3 {
        waiting.push(bridge.submit(&format!("call-{n}"), VOICE, SUPPORT).await);
    }

    proxy.cut();
    let outage = tokio::time::Instant::now();
    health_becomes(centre.server.channel().await, ServingStatus::NotServing).await;
    submit_refused(&mut bridge, "call-4").await;
    // Routing goes on from memory: the first caller in line reaches Alice.
    let mut alice = centre.agent("alice").await;
    let offer = alice.offer().await;
    assert_eq!(offer.work_item_id, waiting[0].work_item_id);
    alice.accept(&offer.work_item_id).await;
    bridge.delivery(&offer.work_item_id).await;
    // Keep the database away for a while, so the writer retries with backoff.
    tokio::time::sleep_until(outage + Duration::from_secs(8)).await;
    submit_refused(&mut bridge, "call-4").await;

    proxy.restore();
    health_becomes(centre.server.channel().await, ServingStatus::Serving).await;
    let retried = bridge.submit("call-4", VOICE, SUPPORT).await;
    assert!(retried.created, "the refused submission was never stored");
    let ack = bridge
        .report(Report::Connected(pb::InteractionConnected {
            work_item_id: offer.work_item_id.clone(),
        }))
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    drop(alice);
    centre.server.stop().await;

    // Everything routed during the outage was written once it ended.
    let lifecycles = common::check_lifecycles(&backend).await;
    assert_eq!(lifecycles.len(), 4, "calls 1–4, each once: {lifecycles:?}");
    assert_eq!(
        lifecycles[0][..4],
        [K::Queued, K::Offered, K::Answered, K::Connected],
        "call 1 was offered and answered while the database was away"
    );
    drop(proxy);
}

#[tokio::test]
async fn a_read_only_sqlite_file_refuses_new_work_and_says_not_serving() {
    let backend = common::sqlite();
    let centre = Centre::start(&backend, support_queue(), vec![agent("alice", 3)]).await;
    let mut bridge = centre.bridge().await;
    let stored = bridge.submit("call-1", VOICE, SUPPORT).await;
    drop(bridge);
    centre.server.stop().await;

    // The same file, opened read-only (as a full or read-only disk would
    // leave it; root ignores file modes, so the test asks SQLite itself).
    let read_only = ServeConfig::ephemeral(format!("{}?mode=ro", backend.url));
    let server = common::TestServer::start_with(read_only).await;
    let mut bridge = BridgeClient::open(server.channel().await).await;
    // Reads still work, so the first write finds out: that submission is
    // held for the commit hold (5 s), then refused, never acknowledged.
    submit_refused(&mut bridge, "call-2").await;
    health_becomes(server.channel().await, ServingStatus::NotServing).await;
    submit_refused(&mut bridge, "call-3").await;
    let open = bridge
        .client
        .list_open_interactions(pb::ListOpenInteractionsRequest {})
        .await
        .expect("open interactions are listed from memory")
        .into_inner()
        .interactions;
    assert!(
        open.iter().all(|item| item.interaction_id != "call-3"),
        "a submission refused at once leaves nothing behind: {open:?}"
    );
    assert_eq!(
        open[0].work_item_id, stored.work_item_id,
        "the stored caller still waits"
    );
    drop(bridge);
    server.stop().await;
}
