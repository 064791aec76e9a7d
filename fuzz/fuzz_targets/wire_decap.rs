//! Any frame under any link type and any decapsulation setting: decoding never panics, stays
//! within the frame (packet, header and fragment slices all point inside it), counts each frame
//! exactly once, and peels at most `MAX_ENCAPSULATIONS` tunnels (a tunnel bomb is `too_deep`).
//! Seeded with the frames of real tunnel captures (`fuzz/corpus/wire_decap`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pacstap_core::Timestamp;
use pacstap_wire::{decode_frame_with, linktype, WireConfig, WireDecoder, MAX_ENCAPSULATIONS};

fn inside(frame: &[u8], part: &[u8]) -> bool {
    let (f, p) = (frame.as_ptr() as usize, part.as_ptr() as usize);
    part.is_empty() || (p >= f && p + part.len() <= f + frame.len())
}

fuzz_target!(|data: &[u8]| {
    let [lt, cfg_bits, frame @ ..] = data else { return };
    // Ethernet most often: the tunnels start there.
    let link_types = [
        linktype::ETHERNET,
        linktype::ETHERNET,
        linktype::ETHERNET,
        linktype::RAW,
        linktype::NULL,
        linktype::LOOP,
        linktype::LINUX_SLL,
        linktype::LINUX_SLL2,
        linktype::IPV4,
        linktype::IPV6,
    ];
    let linktype = link_types[usize::from(*lt) % link_types.len()];
    let mut cfg = WireConfig::default();
    cfg.enabled = cfg_bits & 1 == 0;
    if cfg_bits & 2 != 0 {
        cfg.vxlan_ports.push(8472);
    }
    if cfg_bits & 4 != 0 {
        cfg.geneve_ports.clear();
    }
    if cfg_bits & 8 != 0 {
        // The same port for both: VXLAN is tried first.
        cfg.geneve_ports.push(4789);
    }
    let mut dec = WireDecoder::with_config(cfg.clone());
    let d = dec.decode_full(Timestamp(0), linktype, frame);
    let again = decode_frame_with(&cfg, Timestamp(0), linktype, frame);
    assert_eq!(d.packet.is_ok(), again.packet.is_ok());
    assert_eq!(d.encapsulations, again.encapsulations);
    let s = &dec.stats;
    let outcomes = s.tcp
        + s.non_tcp
        + s.non_ip
        + s.truncated
        + s.malformed
        + s.ip_fragments
        + s.unsupported_link
        + s.too_deep
        + s.unsupported_tunnel;
    assert_eq!((s.frames, outcomes), (1, 1));
    assert!(d.encapsulations.iter().count() <= MAX_ENCAPSULATIONS);
    if !cfg.enabled {
        assert!(d.encapsulations.is_empty() && d.tunnel.is_none());
    }
    if let Ok(p) = d.packet {
        assert!(inside(frame, p.payload) && inside(frame, p.ip_header) && inside(frame, p.tcp_header));
        assert!(p.payload.len() as u64 <= u64::from(p.wire_payload_len));
    }
    if let Some(fragment) = d.fragment {
        assert!(inside(frame, fragment));
        // What a defragmenter would feed back: decoding it as raw IP never panics either.
        let _ = decode_frame_with(&cfg, Timestamp(0), linktype::RAW, fragment);
    }
});
