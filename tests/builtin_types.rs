//! The built-in POS query types on both drivers, against a real sandbox PostgreSQL: every type
//! runs on the multiplexed driver (`-j`) with the transaction counts the server itself counts
//! (pg_stat_database's commits and rollbacks on the test's own database), `transaction` rolls
//! back every time on every protocol (after an error inside too), an error does not abort a
//! built-in type's client on either driver (a pgbench script's it would), both drivers run exactly
//! the same transactions for `-t N`, and `compare` flags two runs made with different drivers.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgstorm::compare::{self, CompareOptions};
use pgstorm::engine::stats::ErrorClass;
use pgstorm::engine::{self, EngineConfig, EngineOutput};
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;
use pgstorm::stop::StopToken;
use pgstorm::target::{Target, TargetSource};
use pgstorm::workload::{builtin, DataRange, Protocol, Workload};

const CLIENTS: u32 = 4;

/// The test's own database `db`, seeded, with its data window.
fn seeded(db: &str) -> (Target, DataRange) {
    let dsn = common::database(db);
    let mut c = common::client_of(db);
    let marker = pgstorm::dataset::ensure(&mut c, false, &mut |_| {}).unwrap();
    let data = DataRange {
        partners: marker.partners,
        orders: marker.orders,
        start_us: marker.data_start.timestamp_micros(),
        end_us: marker.data_end.timestamp_micros(),
    };
    (Target::new(dsn.parse().unwrap(), TargetSource::Dsn), data)
}

/// (commits, rollbacks) the server counted for `db`, once no backend of it is left: backends
/// flush their counters as they exit, so a count read while they close would be short.
fn server_xacts(db: &str) -> (i64, i64) {
    server_xacts_ignoring(db, 0)
}

/// [`server_xacts`] with `others` backends of `db` (the test's own) left open.
fn server_xacts_ignoring(db: &str, others: i64) -> (i64, i64) {
    let mut c = common::client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&db],
            )
            .unwrap()
            .get(0);
        if n <= others {
            break;
        }
        assert!(Instant::now() < deadline, "{n} backends of {db} still open");
        std::thread::sleep(Duration::from_millis(50));
    }
    let row = c
        .query_one(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = $1",
            &[&db],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

/// Runs `mix` for `-t transactions` on `threads` multiplexing threads (`None`: the pool driver).
fn load(
    target: &Target,
    data: &DataRange,
    mix: &str,
    protocol: Protocol,
    threads: Option<u32>,
    transactions: u64,
) -> EngineOutput {
    let mix = pgstorm::workload::parse_mix(mix, &builtin::NAMES).unwrap();
    let workload = Workload::new(builtin::from_mix(&mix, data, 7).unwrap(), protocol).unwrap();
    let cfg = EngineConfig {
        clients: CLIENTS,
        threads,
        duration: None,
        transactions_per_client: Some(transactions),
        pin: false,
        seed: 7,
        ..QueriesOptions::default().engine
    };
    engine::run(target, Arc::new(workload), &cfg, &StopToken::new()).unwrap()
}

/// Successful transactions per type, and the failed ones of all types.
type Counts = (Vec<(String, u64)>, u64);

fn counts(out: &EngineOutput) -> Counts {
    let ok = out
        .names
        .iter()
        .cloned()
        .zip(out.totals.iter().map(|t| t.ok))
        .collect();
    let failed = out.totals.iter().flat_map(|t| t.errors).sum();
    (ok, failed)
}

/// The server's (commits, rollbacks) during one load of `mix`, with what the engine counted.
fn measured(
    db: &str,
    target: &Target,
    data: &DataRange,
    mix: &str,
    protocol: Protocol,
    threads: Option<u32>,
    transactions: u64,
) -> ((i64, i64), Counts) {
    let before = server_xacts(db);
    let out = load(target, data, mix, protocol, threads, transactions);
    let after = server_xacts(db);
    ((after.0 - before.0, after.1 - before.1), counts(&out))
}

#[test]
fn every_builtin_type_runs_on_jobs_with_the_servers_commit_and_rollback_counts() {
    let db = "builtin_mux_counts";
    let (target, data) = seeded(db);
    // Connecting and preparing commit transactions of their own, the same for any -t: the
    // difference between a run of 2N and one of N transactions per client is the load's alone.
    let n = 15u64;
    for name in builtin::NAMES {
        let protocols: &[Protocol] = if name == "transaction" {
            &[Protocol::Prepared, Protocol::Extended, Protocol::Simple]
        } else {
            &[Protocol::Prepared]
        };
        for &protocol in protocols {
            let mix = format!("{name}=1");
            let (short, short_counts) = measured(db, &target, &data, &mix, protocol, Some(2), n);
            let (long, long_counts) = measured(db, &target, &data, &mix, protocol, Some(2), 2 * n);
            let what = format!("{name} -M {}", protocol.as_str());
            eprintln!(
                "{what}: server (commits, rollbacks) {short:?} for -t {n}, {long:?} for -t {}",
                2 * n
            );
            assert_eq!(
                short_counts,
                (vec![(name.to_string(), n * CLIENTS as u64)], 0),
                "{what}"
            );
            assert_eq!(
                long_counts,
                (vec![(name.to_string(), 2 * n * CLIENTS as u64)], 0),
                "{what}"
            );
            let load = ((long.0 - short.0) as u64, (long.1 - short.1) as u64);
            let expected = if name == "transaction" {
                (0, n * CLIENTS as u64)
            } else {
                (n * CLIENTS as u64, 0)
            };
            assert_eq!(load, expected, "{what}: (commits, rollbacks) of the load");
            if name == "transaction" {
                // Nothing else in a run rolls back: every transaction did, and only they did.
                assert_eq!(short.1 as u64, n * CLIENTS as u64, "{what}");
            }
        }
    }
    let mut c = common::client_of(db);
    let draft: i64 = c
        .query_one(
            "SELECT count(*) FROM pgstorm.pos_order WHERE state = 'draft'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(draft, 0, "a transaction's insert survived its rollback");
}

#[test]
fn a_timed_out_statement_is_counted_and_rolled_back_and_the_client_goes_on() {
    let db = "builtin_errors_go_on";
    let (target, data) = seeded(db);
    // 40 transactions per client of at least the 100 ms timeout outlast the 3 s lock, so each
    // client meets both the lock and its end, however slowly its connections open.
    let n = 40u64;
    for threads in [None, Some(2)] {
        // The table is locked while the load starts: statements wait past the statement
        // timeout (57014, which aborts a pgbench script's client) until the lock goes.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let locker = std::thread::spawn(move || {
            let mut c = common::client_of(db);
            let mut tx = c.transaction().unwrap();
            tx.batch_execute("LOCK TABLE pgstorm.pos_order IN ACCESS EXCLUSIVE MODE")
                .unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            tx.rollback().unwrap();
        });
        locked_rx.recv().unwrap();
        let before = server_xacts_ignoring(db, 1);
        let mix = pgstorm::workload::parse_mix("point=1,transaction=1", &builtin::NAMES).unwrap();
        let workload = Arc::new(
            Workload::new(
                builtin::from_mix(&mix, &data, 7).unwrap(),
                // Simple: a prepare would wait for the lock too, before the load starts.
                Protocol::Simple,
            )
            .unwrap(),
        );
        let cfg = EngineConfig {
            clients: CLIENTS,
            threads,
            duration: None,
            transactions_per_client: Some(n),
            pin: false,
            seed: 7,
            statement_timeout: Duration::from_millis(100),
            ..QueriesOptions::default().engine
        };
        let out = engine::run(&target, workload.clone(), &cfg, &StopToken::new()).unwrap();
        locker.join().unwrap();
        let after = server_xacts(db);
        let timeouts: u64 = out
            .totals
            .iter()
            .map(|t| t.errors[ErrorClass::StatementTimeout as usize])
            .sum();
        let (ok, failed) = counts(&out);
        let ok_total: u64 = ok.iter().map(|(_, c)| c).sum();
        eprintln!("-j {threads:?}: ok {ok:?}, {failed} failed ({timeouts} timeouts)");
        assert!(timeouts > 0, "-j {threads:?}: the lock timed nothing out");
        assert_eq!(
            failed, timeouts,
            "-j {threads:?}: failures other than the timeouts"
        );
        // Every client ran all its transactions: none stopped at its first error.
        assert_eq!(ok_total + failed, n * CLIENTS as u64, "-j {threads:?}");
        assert!(
            ok_total > 0,
            "-j {threads:?}: nothing succeeded after the lock went"
        );
        for t in &workload.types {
            assert!(t.script().aborts().is_empty(), "{}", t.name());
        }
        // Each transaction-type execution ended in exactly one rollback (its own ROLLBACK, or
        // the executor's after the error), each failed point query aborted its implicit
        // transaction, and the lock's holder rolled back once.
        let tx_ok = ok.iter().find(|(t, _)| t == "transaction").unwrap().1;
        assert_eq!(
            (after.1 - before.1) as u64,
            tx_ok + failed + 1,
            "-j {threads:?}: rollbacks"
        );
    }
}

#[test]
fn both_drivers_run_the_same_transactions_for_a_transaction_count() {
    let db = "builtin_drivers_same";
    let (target, data) = seeded(db);
    let n = 40u64;
    let (pool_server, pool) = measured(
        db,
        &target,
        &data,
        builtin::DEFAULT_MIX,
        Protocol::Prepared,
        None,
        n,
    );
    let (mux_server, mux) = measured(
        db,
        &target,
        &data,
        builtin::DEFAULT_MIX,
        Protocol::Prepared,
        Some(2),
        n,
    );
    eprintln!("pool {pool:?} server {pool_server:?}; -j 2 {mux:?} server {mux_server:?}");
    assert_eq!(pool.1, 0, "pool driver failures");
    assert_eq!(mux.1, 0, "-j failures");
    // The same seed picks the same type sequence per client on both drivers.
    assert_eq!(pool.0, mux.0);
    let total: u64 = pool.0.iter().map(|(_, c)| c).sum();
    assert_eq!(total, n * CLIENTS as u64);
    let tx = pool.0.iter().find(|(t, _)| t == "transaction").unwrap().1;
    assert!(tx > 0, "the default mix ran no transaction type");
    assert_eq!(pool_server.1 as u64, tx, "pool driver: server rollbacks");
    assert_eq!(mux_server.1 as u64, tx, "-j: server rollbacks");
}

#[test]
fn queries_with_jobs_records_its_driver_and_compare_flags_a_mix_of_drivers() {
    let db = "builtin_drivers_compare";
    let tmp = tempfile::tempdir().unwrap();
    let run = |threads: Option<u32>| {
        let mut o = QueriesOptions {
            target: TargetOptions {
                dsn: Some(common::database(db)),
                sandbox_max_connections: None,
                ..Default::default()
            },
            mix: "point=5,transaction=1".into(),
            monitor: None,
            print_summary: false,
            ..QueriesOptions::default()
        };
        o.archive.results_dir = tmp.path().to_path_buf();
        o.archive.label = format!("{db}-{threads:?}");
        o.engine.clients = CLIENTS;
        o.engine.threads = threads;
        o.engine.duration = None;
        o.engine.transactions_per_client = Some(20);
        o.engine.pin = false;
        queries::run(&o).unwrap()
    };
    let pool = run(None);
    let mux = run(Some(2));
    let config = |o: &queries::Outcome| o.doc.load.as_ref().unwrap().config.threads;
    assert_eq!((config(&pool), config(&mux)), (None, Some(2)));
    for o in [&pool, &mux] {
        let load = o.doc.load.as_ref().unwrap();
        let names: Vec<&str> = load.queries.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(names, ["point", "transaction"]);
        assert_eq!(load.summary.count, 20 * CLIENTS as u64);
    }
    // Each driver's load threads measured their wait for a CPU: one per client, or the -j ones.
    let measured = |o: &queries::Outcome| {
        let rq = o.doc.load.as_ref().unwrap().client.run_queue.clone();
        rq.expect("this Linux host counts the run-queue wait")
            .threads
    };
    assert_eq!((measured(&pool), measured(&mux)), (CLIENTS, 2));
    let side = |o: &queries::Outcome| compare::load_side(o.dir.to_str().unwrap()).unwrap();
    let c = compare::compare(&side(&pool), &side(&mux), &CompareOptions::default());
    assert!(
        c.warnings.iter().any(|w| w.starts_with("driver differs")
            && w.contains("one thread per client")
            && w.contains("2 multiplexing threads (-j)")),
        "{:?}",
        c.warnings
    );
    // Negative control: the same driver on both sides is not flagged.
    let c = compare::compare(&side(&mux), &side(&mux), &CompareOptions::default());
    assert!(
        !c.warnings.iter().any(|w| w.starts_with("driver differs")),
        "{:?}",
        c.warnings
    );
}
