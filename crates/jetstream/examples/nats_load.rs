//! Scale measurement helper (docs/scale.md): load an events file into the stream, or drain the
//! stream through the central loop with detection replaced by a JSON parse, to measure what
//! one sensor publishes and what one consumer can take apart from detection.
//!
//! ```text
//! nats_load publish nats://127.0.0.1:4222 EVENTS.jsonl HOST   # prints events/s published (acks awaited)
//! nats_load drain   nats://127.0.0.1:4222 DURABLE             # prints events/s consumed (checkpointed, acked)
//! ```

use pacstap_jetstream::checkpoint::Raised;
use pacstap_jetstream::consume::ConsumerSettings;
use pacstap_jetstream::consume_central::{run, CentralSettings, Decoded, Detection};
use pacstap_jetstream::stream::{ensure_stream, StreamSettings, MSG_ID_HEADER};
use std::io::BufRead;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("publish") if args.len() == 5 => publish(&args[2], &args[3], &args[4]),
        Some("drain") if args.len() == 4 => drain(&args[2], &args[3]),
        _ => {
            eprintln!("usage: nats_load publish URL EVENTS.jsonl HOST | drain URL DURABLE");
            std::process::exit(2);
        }
    }
}

fn publish(url: &str, path: &str, host: &str) {
    let settings = StreamSettings::default();
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("events file"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(url).await.expect("connect");
        let js = async_nats::jetstream::new(client.clone());
        ensure_stream(&js, &settings).await.expect("stream");
        let start = Instant::now();
        let mut acks = std::collections::VecDeque::new();
        let mut n = 0u64;
        for line in file.lines() {
            let line = line.unwrap();
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let et = v["event_type"].as_str().unwrap_or("unknown").to_string();
            let id = format!("{host}-{n}");
            v["host"] = host.into();
            v["event_id"] = id.clone().into();
            let mut h = async_nats::HeaderMap::new();
            h.insert(MSG_ID_HEADER, id.as_str());
            let ack = js
                .publish_with_headers(settings.subject(host, &et), h, v.to_string().into())
                .await
                .expect("publish");
            acks.push_back(ack);
            // At most 4096 acks outstanding, as a sensor's bounded queue would.
            if acks.len() >= 4096 {
                if let Some(a) = acks.pop_front() {
                    a.await.expect("ack");
                }
            }
            n += 1;
        }
        for a in acks {
            a.await.expect("ack");
        }
        let s = start.elapsed().as_secs_f64();
        println!("published {n} events in {s:.2} s: {:.0} events/s", n as f64 / s);
    });
}

struct ParseOnly {
    n: u64,
}

impl Detection for ParseOnly {
    type Event = ();
    type Alert = ();
    fn decode(&mut self, payload: &[u8]) -> Option<Decoded<()>> {
        let v: serde_json::Value = serde_json::from_slice(payload).ok()?;
        Some(Decoded {
            event_id: v["event_id"].as_str().unwrap_or("").to_string(),
            ts_ns: self.n as i64,
            event: (),
        })
    }
    fn reset(&mut self, _: Option<serde_json::Value>) -> Result<(), String> {
        Ok(())
    }
    fn apply(&mut self, _: (), _: &mut Vec<()>) {
        self.n += 1;
    }
    fn finish(&mut self, _: &mut Vec<()>) {}
    fn alert_key(&self, _: &()) -> String {
        Raised::key("", 0, false)
    }
    fn emit(&mut self, _: Vec<()>) -> Result<(), String> {
        Ok(())
    }
    fn learned(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn now_ns(&self) -> i64 {
        self.n as i64
    }
}

fn drain(url: &str, durable: &str) {
    let mut c = ConsumerSettings::new(vec![url.to_string()]);
    c.durable = durable.to_string();
    let mut s = CentralSettings::new(c);
    s.idle_exit = Some(Duration::from_secs(2));
    s.checkpoint = Some(std::env::temp_dir().join(format!("nats_load-{durable}.json")));
    let mut d = ParseOnly { n: 0 };
    let start = Instant::now();
    let stats = run(&mut d, &s).expect("run");
    let secs = (start.elapsed().as_secs_f64() - 2.0).max(0.001);
    println!(
        "consumed {} events in {secs:.2} s (without the 2 s idle exit): {:.0} events/s; {} checkpoints",
        stats.applied,
        stats.applied as f64 / secs,
        stats.checkpoints
    );
}
