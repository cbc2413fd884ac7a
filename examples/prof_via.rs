use bytes::Bytes;
use siphon::sip::{Framing, Limits, Message};
fn main() {
    let msg = include_bytes!("../benches/messages/invite.sip");
    let m = Message::parse(
        Bytes::from_static(msg),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap();
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let mut n = 0usize;
    for _ in 0..iters {
        n += std::hint::black_box(&m)
            .top_via()
            .unwrap()
            .branch()
            .map_or(0, |b| b.len());
    }
    println!("{n}");
}
