//! `new_location` with a MaxMind DB: a tiny database written here by the MaxMind DB format
//! 2.0 specification (search tree, data section, metadata), read through the `maxminddb` crate.

mod common;
use common::*;
use pacstap_detect::{Config, Detector};

/// MaxMind DB data-section encoding of the few types the test needs.
fn ctrl(kind: u8, size: usize, out: &mut Vec<u8>) {
    assert!(size < 29);
    if kind <= 7 {
        out.push((kind << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    ctrl(2, s.len(), out);
    out.extend_from_slice(s.as_bytes());
}

fn uint(kind: u8, v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    ctrl(kind, 8 - skip, out);
    out.extend_from_slice(&bytes[skip..]);
}

fn map(n: usize, out: &mut Vec<u8>) {
    ctrl(7, n, out);
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// An IPv4 database mapping /24 prefixes to ISO country codes.
fn mmdb(entries: &[([u8; 3], &str)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for (prefix, iso) in entries {
        let off = data.len() as u32;
        map(1, &mut data);
        string("country", &mut data);
        map(1, &mut data);
        string("iso_code", &mut data);
        string(iso, &mut data);
        let bits = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], 0]);
        let mut cur = 0usize;
        for i in 0..24 {
            let bit = ((bits >> (31 - i)) & 1) as usize;
            if i == 23 {
                nodes[cur][bit] = Rec::Data(off);
                break;
            }
            cur = match nodes[cur][bit] {
                Rec::Node(n) => n as usize,
                _ => {
                    nodes.push([Rec::Empty, Rec::Empty]);
                    let n = nodes.len() - 1;
                    nodes[cur][bit] = Rec::Node(n as u32);
                    n
                }
            };
        }
    }
    let count = nodes.len() as u32;
    let mut db = Vec::new();
    for node in &nodes {
        for rec in node {
            let v = match *rec {
                Rec::Empty => count,
                Rec::Node(n) => n,
                Rec::Data(off) => count + 16 + off,
            };
            db.extend_from_slice(&v.to_be_bytes()[1..]);
        }
    }
    db.extend_from_slice(&[0u8; 16]);
    db.extend_from_slice(&data);
    db.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let mut meta = Vec::new();
    map(9, &mut meta);
    string("binary_format_major_version", &mut meta);
    uint(5, 2, &mut meta);
    string("binary_format_minor_version", &mut meta);
    uint(5, 0, &mut meta);
    string("build_epoch", &mut meta);
    uint(9, 1_795_824_000, &mut meta);
    string("database_type", &mut meta);
    string("Test-Country", &mut meta);
    string("description", &mut meta);
    map(1, &mut meta);
    string("en", &mut meta);
    string("pacstap test", &mut meta);
    string("ip_version", &mut meta);
    uint(5, 4, &mut meta);
    string("languages", &mut meta);
    ctrl(11, 1, &mut meta);
    string("en", &mut meta);
    string("node_count", &mut meta);
    uint(6, u64::from(count), &mut meta);
    string("record_size", &mut meta);
    uint(5, 24, &mut meta);
    db.extend_from_slice(&meta);
    db
}

#[test]
fn new_country_fires_with_a_maxmind_database() {
    let path = std::env::temp_dir().join(format!("pacstap-detect-{}.mmdb", std::process::id()));
    std::fs::write(&path, mmdb(&[([203, 0, 113], "FR"), ([198, 51, 100], "DE")])).expect("write mmdb");
    let cfg = config(&format!("[geoip]\ndatabase = {:?}\n", path.display().to_string()));
    let mut r = Run::new(&cfg);
    let web = "10.20.0.10:8042";
    r.feed(login(0, flow("203.0.113.5:1", web), 200, "ext1"));
    r.feed(login(HOUR, flow("203.0.113.77:1", web), 200, "ext1"));
    r.feed(login(2 * HOUR, flow("192.0.2.1:1", web), 200, "ext1")); // not in the database
    let rules: Vec<String> = r.fired().into_iter().map(|f| f.0).collect();
    assert!(!rules.contains(&"new_location".to_string()), "{rules:?}");
    r.feed(login(3 * HOUR, flow("198.51.100.7:1", web), 200, "ext1"));
    let a = r.of_rule("new_location");
    assert_eq!(a.len(), 1, "{:?}", r.fired());
    assert!(
        a[0].summary.contains("DE") && a[0].summary.contains("FR"),
        "{}",
        a[0].summary
    );
    let st = r.det.stats();
    assert_eq!((st.geoip_lookups, st.geoip_hits), (4, 3));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_corrupt_database_is_a_startup_error() {
    let path = std::env::temp_dir().join(format!("pacstap-detect-bad-{}.mmdb", std::process::id()));
    std::fs::write(&path, b"not a maxmind database").expect("write");
    let cfg =
        toml::from_str::<Config>(&format!("[geoip]\ndatabase = {:?}\n", path.display().to_string())).expect("cfg");
    let err = Detector::new(&cfg, None).expect_err("corrupt mmdb");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn detector_moves_between_threads() {
    fn send<T: Send>() {}
    send::<Detector>();
    send::<pacstap_detect::StateStore>();
}
