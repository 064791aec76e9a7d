//! Criterion benches of the tls decoder (filled in with the decoder, issue 3).
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(_c: &mut Criterion) {}

criterion_group!(benches, bench);
criterion_main!(benches);
