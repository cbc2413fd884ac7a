//! The Siphon load generator. The SIPp/Kamailio harness lands with the
//! runtime issue; until then this binary only reports that it is not built.

fn main() {
    eprintln!("siphon-loadtest: the load generator is not built yet (see README, 'Status')");
    std::process::exit(2);
}
