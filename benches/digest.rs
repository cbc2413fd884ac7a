//! SIP Digest authentication: `cargo bench --bench digest`.
//!
//! `verify` is one `Authorization` value checked end to end, with the
//! answer `Ok`: parse, nonce HMAC, HA1 (stored, or computed from a
//! password), response, and the replay window update. Each iteration
//! uses the next nonce count on one nonce, so none is a replay; the
//! header is built in criterion's untimed setup. `challenges` is the pair
//! of header values (one nonce, one HMAC) a 401/407 carries.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use siphon::auth::{client_response, ha1_hex, Algorithm, Auth, Credential, Users, Verdict};

const REALM: &str = "bench.siphon.test";
const URI: &str = "sip:bench.siphon.test";
const NOW: u64 = 1_700_000_000;

fn auth() -> Auth {
    let mut users = Users::new();
    // A realistic map size around the two users measured.
    for i in 0..10_000 {
        users.insert(format!("user{i}"), Credential::password("pw"));
    }
    users.insert("pw".into(), Credential::password("secret"));
    users.insert(
        "ha1".into(),
        Credential::ha1(
            Some(ha1_hex(Algorithm::Md5, "ha1", REALM, "secret")),
            Some(ha1_hex(Algorithm::Sha256, "ha1", REALM, "secret")),
        ),
    );
    Auth::new(REALM.into(), [7; 32], 3600, users, 100_000)
}

fn verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest_verify");
    g.throughput(Throughput::Elements(1));
    for (alg, name) in [(Algorithm::Md5, "md5"), (Algorithm::Sha256, "sha256")] {
        for user in ["ha1", "pw"] {
            let auth = auth();
            let [sha, md5]: [String; 2] = auth.challenges(NOW, false).try_into().unwrap();
            let challenge = if alg == Algorithm::Md5 { md5 } else { sha };
            let mut nc = 0u32;
            g.bench_function(format!("{name}/{user}"), |b| {
                b.iter_batched(
                    || {
                        nc += 1;
                        client_response(&challenge, user, "secret", "REGISTER", URI, "c0ffee", nc)
                            .unwrap()
                    },
                    |header| {
                        let v = auth.verify(
                            black_box(header.as_bytes()),
                            b"REGISTER",
                            URI.as_bytes(),
                            NOW,
                        );
                        assert!(matches!(v, Verdict::Ok { .. }), "{v:?}");
                        v
                    },
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

fn challenges(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest_challenge");
    g.throughput(Throughput::Elements(1));
    let auth = auth();
    g.bench_function("sha256_and_md5", |b| {
        b.iter(|| auth.challenges(black_box(NOW), false))
    });
    g.finish();
}

criterion_group!(benches, verify, challenges);
criterion_main!(benches);
