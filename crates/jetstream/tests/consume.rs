//! The durable consumer and the warm-up replay against a real `nats-server -js` on loopback
//! (skipped, with a note, when nats-server is not installed): delivery, ack-after-apply across
//! a consumer restart, a server restart under a running consumer, and a 3-node cluster with a
//! replicated stream losing a node mid-run.

mod common;

use common::{free_port, have_nats, publish, single, Server, TempDir};
use pacstap_jetstream::consume::{Consumer, ConsumerSettings, Delivery, Replay};
use pacstap_jetstream::stream::StreamSettings;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn stream_count(servers: &[String], settings: &StreamSettings) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(servers).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = js.get_stream(&settings.name).await {
                if let Ok(info) = s.get_info().await {
                    return info.state.messages;
                }
            }
            assert!(Instant::now() < deadline, "stream info never answered");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Receive until `want` distinct sequences arrived or `limit` passed; acks what `ack` says.
fn drain(c: &Consumer, want: usize, limit: Duration, ack: impl Fn(&Delivery) -> bool) -> Vec<Delivery> {
    let mut got: Vec<Delivery> = Vec::new();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + limit;
    while seen.len() < want && Instant::now() < deadline {
        if let Some(d) = c.recv_timeout(Duration::from_millis(200)) {
            if ack(&d) {
                c.ack(vec![d.seq]);
            }
            if seen.insert(d.seq) {
                got.push(d);
            }
        }
    }
    got
}

/// Like [`drain`], acking everything, until `seen` (what earlier drains got) holds `want`
/// distinct sequences: a redelivery of an earlier message (its ack lost with a node) is not
/// counted as a new one.
fn drain_into(c: &Consumer, seen: &mut BTreeSet<u64>, want: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while seen.len() < want && Instant::now() < deadline {
        if let Some(d) = c.recv_timeout(Duration::from_millis(200)) {
            c.ack(vec![d.seq]);
            seen.insert(d.seq);
        }
    }
}

fn settings(servers: Vec<String>, ack_wait: Duration) -> ConsumerSettings {
    let mut s = ConsumerSettings::new(servers);
    s.ack_wait = ack_wait;
    s.batch = 32;
    s
}

#[test]
fn durable_consumer_acks_only_what_the_caller_applied() {
    if !have_nats() {
        return;
    }
    let dir = TempDir::new("ack");
    let server = single(dir.path());
    let servers = vec![server.url()];
    let stream = StreamSettings::default();
    publish(&servers, &stream, "site-a", 0..100);
    // A second publish of the same ids is stored once (Nats-Msg-Id within the duplicate window).
    publish(&servers, &stream, "site-a", 0..100);
    assert_eq!(stream_count(&servers, &stream), 100);

    let c = Consumer::start(settings(servers.clone(), Duration::from_secs(1))).unwrap();
    let first = drain(&c, 100, Duration::from_secs(20), |d| d.seq <= 60);
    assert_eq!(first.len(), 100);
    let seqs: Vec<u64> = first.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "in stream order, each once");
    let body: serde_json::Value = serde_json::from_slice(&first[7].payload).unwrap();
    assert_eq!(body["event_id"], "site-a-7");
    assert_eq!(first[7].subject, "pacstap.site-a.dicom");
    // Let the 60 acks reach the server before the consumer goes away.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.stats().acked.load(std::sync::atomic::Ordering::Relaxed) < 60 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    c.stop();

    // The same durable again: only the 40 never acked come back (after ack_wait).
    let c = Consumer::start(settings(servers.clone(), Duration::from_secs(1))).unwrap();
    let again = drain(&c, 40, Duration::from_secs(20), |_| true);
    let seqs: BTreeSet<u64> = again.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (61..=100).collect::<BTreeSet<_>>());
    assert!(again.iter().all(|d| d.delivered >= 2), "redeliveries say so");
    // Nothing else is pending.
    assert!(c.recv_timeout(Duration::from_millis(2500)).is_none());
    c.stop();

    // The warm-up replay reads a range without a durable, in order.
    let mut got = Vec::new();
    let n = Replay::range(&servers, &stream, 10, 20, Duration::from_secs(5), |d| got.push(d.seq)).unwrap();
    assert_eq!(n, 11);
    assert_eq!(got, (10..=20).collect::<Vec<_>>());
}

#[test]
fn consumer_rebinds_after_the_server_comes_back() {
    if !have_nats() {
        return;
    }
    let dir = TempDir::new("restart");
    let mut server = single(dir.path());
    let servers = vec![server.url()];
    let stream = StreamSettings::default();
    publish(&servers, &stream, "site-b", 0..50);
    let c = Consumer::start(settings(servers.clone(), Duration::from_secs(30))).unwrap();
    let first = drain(&c, 50, Duration::from_secs(20), |_| true);
    assert_eq!(first.len(), 50);
    std::thread::sleep(Duration::from_millis(300));
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    server.spawn();
    publish(&servers, &stream, "site-b", 50..80);
    let second = drain(&c, 30, Duration::from_secs(30), |_| true);
    let seqs: BTreeSet<u64> = second.iter().map(|d| d.seq).collect();
    assert_eq!(
        seqs,
        (51..=80).collect::<BTreeSet<_>>(),
        "the events published after the restart"
    );
    // (async-nats' pull stream usually rides the reconnect itself; a rebind happens only when
    // it reports an error, so the count of rebinds is not asserted.)
    c.stop();
}

#[test]
fn three_node_cluster_loses_a_node_and_no_event() {
    if !have_nats() {
        return;
    }
    let dir = TempDir::new("cluster");
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes = route_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes: Vec<Server> = (0..3)
        .map(|i| {
            let store = dir.path().join(format!("n{i}"));
            let args = vec![
                "-js".into(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                client_ports[i].to_string(),
                "-n".into(),
                format!("n{i}"),
                "-sd".into(),
                store.display().to_string(),
                "--cluster_name".into(),
                "c".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{}", route_ports[i]),
                "--routes".into(),
                routes.clone(),
            ];
            Server::start(args, client_ports[i])
        })
        .collect();
    let servers: Vec<String> = nodes.iter().map(Server::url).collect();
    let stream = StreamSettings {
        replicas: 3,
        ..Default::default()
    };
    publish(&servers, &stream, "site-a", 0..150);
    let c = Consumer::start(settings(servers.clone(), Duration::from_secs(5))).unwrap();
    let first = drain(&c, 100, Duration::from_secs(30), |_| true);
    assert_eq!(first.len(), 100);
    // One node goes away mid-run; publishing and consuming go on through the other two.
    nodes[1].kill();
    publish(&servers, &stream, "site-b", 0..150);
    // Some acks of the first 100 go down with the node: those come again, and must not be
    // taken for new events (an earlier version of this test counted them per drain and stopped
    // short of the last new ones).
    let mut all: BTreeSet<u64> = first.iter().map(|d| d.seq).collect();
    drain_into(&c, &mut all, 300, Duration::from_secs(60));
    assert_eq!(all.len(), 300, "every event delivered ({:?})", c.stats());
    assert_eq!(all.iter().copied().max(), Some(300));
    c.stop();
    let alive: Vec<String> = vec![servers[0].clone(), servers[2].clone()];
    assert_eq!(
        stream_count(&alive, &stream),
        300,
        "count in stream == events published"
    );
}
