//! The publisher against a real `nats-server -js` that dies (SIGKILL) in the middle of a steady
//! stream of events and comes back on the same port and store: publishes in flight time out and
//! are retried with the same `Nats-Msg-Id`, so every event is stored exactly once.

#[path = "../../../tests/common/nats.rs"]
mod nats;

use pacstap_jetstream::{PublishSettings, Publisher};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// (messages, distinct Nats-Msg-Id) in the stream.
fn stream_ids(url: &str) -> (u64, BTreeSet<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream("PACSTAP").await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut ids = BTreeSet::new();
        for seq in state.first_sequence..=state.last_sequence {
            let m = stream.get_raw_message(seq).await.unwrap();
            if let Some(id) = m.headers.get(async_nats::header::NATS_MESSAGE_ID) {
                ids.insert(id.as_str().to_string());
            }
        }
        (state.messages, ids)
    })
}

#[test]
fn a_server_killed_mid_stream_and_restarted_stores_every_event_once() {
    if !nats::available() {
        eprintln!("skipped: nats-server is not installed");
        return;
    }
    let mut server = nats::NatsServer::start();
    let mut settings = PublishSettings::new(vec![server.url()], "sensor-1".into());
    settings.ack_timeout = Duration::from_millis(500);
    settings.drain_timeout = Duration::from_secs(60);
    let mut p = Publisher::start(settings).unwrap();
    let counters = p.counters();
    let start = Instant::now();
    let mut killed = false;
    let mut restarted = false;
    let mut acked_before_kill = 0;
    // 100 events every 5 ms for 3 s; the server is away from 1 s to 2 s.
    while start.elapsed() < Duration::from_secs(3) {
        for _ in 0..100 {
            p.publish("dicom", br#"{"event_type":"dicom","dicom":{"type":"command"}}"#);
        }
        let t = start.elapsed();
        if !killed && t >= Duration::from_secs(1) {
            acked_before_kill = counters.totals().acked;
            server.stop();
            killed = true;
        }
        if !restarted && t >= Duration::from_secs(2) {
            server.restart();
            restarted = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let offered = p.offered();
    let end = p.shutdown();
    assert!(acked_before_kill > 0, "publishing had started before the outage");
    assert_eq!(end.dropped, 0, "{end:?}");
    assert_eq!(end.failed, 0, "{end:?}");
    assert_eq!(end.acked, offered, "{end:?}");
    let (messages, ids) = stream_ids(&server.url());
    assert_eq!(messages, offered, "every event stored once: {end:?}\n{}", server.log());
    assert_eq!(ids.len() as u64, offered, "distinct ids");
    eprintln!(
        "outage test: {offered} events, {} acked before the kill, {} retries, {} stored",
        acked_before_kill, end.retried, messages
    );
}
