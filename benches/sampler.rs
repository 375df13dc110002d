//! Cost of one resource sample, the figure behind "sampling must not disturb the measurement":
//! the host sampler (sysinfo CPU + memory refresh, network counters, /proc disk, swap and the
//! PostgreSQL process tree) and the server sampler (one transaction of three prepared queries on
//! its own connection to a sandbox PostgreSQL).
//!
//! Run: `cargo bench --bench sampler`. At the default 1 s interval a sample's cost in µs is also
//! its share of one core in ppm.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use pgstorm::monitor::host_sampler::HostSampler;
use pgstorm::monitor::server::ServerSampler;
use pgstorm::sandbox::{Sandbox, SandboxOptions};
use pgstorm::target::{Target, TargetSource};

fn samplers(c: &mut Criterion) {
    let sandbox = Sandbox::start(&SandboxOptions::default()).expect("start a sandbox PostgreSQL");
    let mut group = c.benchmark_group("sampler");

    let mut host = HostSampler::new(sandbox.postmaster_pid());
    let mut tick = 0u64;
    group.bench_function("host_sample", |b| {
        b.iter(|| {
            tick += 1;
            black_box(host.sample(tick as f64, tick))
        })
    });

    let mut server =
        ServerSampler::connect(&Target::new(sandbox.pg_config(), TargetSource::Sandbox))
            .expect("connect the sampler");
    group.bench_function("server_sample", |b| {
        b.iter(|| {
            tick += 1;
            black_box(server.sample(tick as f64, tick).expect("sample"))
        })
    });
    group.finish();
}

criterion_group!(benches, samplers);
criterion_main!(benches);
