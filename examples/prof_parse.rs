use bytes::Bytes;
use siphon::sip::{Framing, Limits, Message};
fn main() {
    let msg = include_bytes!("../benches/messages/invite.sip");
    let buf = Bytes::from_static(msg);
    let limits = Limits::default();
    let which = std::env::args().nth(1).unwrap_or_default();
    let mut n = 0usize;
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    for _ in 0..iters {
        let m = Message::parse(
            std::hint::black_box(buf.clone()),
            Framing::Datagram,
            &limits,
        )
        .unwrap();
        if which == "via" {
            n += m.top_via().unwrap().branch().map_or(0, |b| b.len());
        }
        n += m.fields().len();
    }
    println!("{n}");
}
