//! Integration tests of the POS dataset against a real PostgreSQL.
//!
//! The target is database `dataset` of the test binary's sandbox (or `PGSTORM_TEST_DSN`, a URL or
//! conninfo string, to run them against another server). The tests share the database's `pgstorm` schema, so they take a
//! process-wide lock and each leaves the schema dropped.

mod common;

use std::sync::{Mutex, MutexGuard};

use pgstorm::dataset::{self, DatasetError, SeedOptions};
use postgres::{Client, NoTls};

static SCHEMA_LOCK: Mutex<()> = Mutex::new(());

/// A connection to the test target with an empty `pgstorm` schema, and the schema lock.
fn target(_test: &str) -> Option<(Client, MutexGuard<'static, ()>)> {
    let dsn = std::env::var("PGSTORM_TEST_DSN").unwrap_or_else(|_| common::database("dataset"));
    let guard = SCHEMA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut client = Client::connect(&dsn, NoTls).expect("connect to PGSTORM_TEST_DSN");
    client
        .batch_execute("DROP SCHEMA IF EXISTS pgstorm CASCADE")
        .unwrap();
    Some((client, guard))
}

fn opts(scale: u32, seed: u64) -> SeedOptions {
    SeedOptions {
        scale,
        seed,
        progress: false,
        ..Default::default()
    }
}

/// md5 of each dataset table's rows in id order.
fn digests(client: &mut Client) -> Vec<String> {
    ["res_partner", "pos_order", "pos_order_line"]
        .iter()
        .map(|t| {
            client
                .query_one(
                    &format!(
                        "SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM pgstorm.{t} t"
                    ),
                    &[],
                )
                .unwrap()
                .get(0)
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_tables_and_another_seed_does_not() {
    let Some((mut client, _guard)) = target("same_seed_gives_identical_tables") else {
        return;
    };
    let first = dataset::seed(&mut client, &opts(1, 42)).unwrap();
    let a = digests(&mut client);
    let second = dataset::seed(&mut client, &opts(1, 42)).unwrap();
    assert_eq!(a, digests(&mut client));
    assert_eq!((first.partners, first.orders), (100, 1_000));
    assert_eq!(first.lines, second.lines);

    dataset::seed(&mut client, &opts(1, 43)).unwrap();
    let c = digests(&mut client);
    for (same, other) in a.iter().zip(&c) {
        assert_ne!(same, other);
    }
    assert!(dataset::clean(&mut client).unwrap());
}

/// Rows are loaded in COPY's binary format: what the server stores must be exactly what the
/// generator produced, for every column type (bigint, integer, numeric(_, 2), timestamptz, text,
/// NULLs). The digests and rows below were read back from scale 1, seed 42 loaded in COPY's text
/// format, whose values the server parsed from their plain decimal and ISO renderings; a seeded
/// dataset must stay the same across pgstorm versions.
#[test]
fn binary_copy_stores_what_the_text_copy_stored() {
    let Some((mut client, _guard)) = target("binary_copy_stores_what_the_text_copy_stored") else {
        return;
    };
    dataset::seed(&mut client, &opts(1, 42)).unwrap();
    client.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let rows = |c: &mut Client, sql: &str| -> Vec<String> {
        c.query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(
        rows(
            &mut client,
            "SELECT t::text FROM pgstorm.res_partner t WHERE id <= 3 ORDER BY id"
        ),
        [
            r#"(1,"Omar Keller",omar.keller.1@example.com,Mons,"2025-05-03 23:54:30+00")"#,
            r#"(2,"Paul Berg",paul.berg.2@example.com,Bruges,"2024-11-14 08:36:02+00")"#,
            r#"(3,"Quentin Berg",quentin.berg.3@example.com,Brussels,"2024-08-10 17:59:31+00")"#,
        ]
    );
    assert_eq!(
        rows(
            &mut client,
            "SELECT t::text FROM pgstorm.pos_order t WHERE id <= 2 ORDER BY id"
        ),
        [
            r#"(1,33,"2025-12-02 05:43:04+00",21.45,done)"#,
            r#"(2,1,"2025-12-02 08:37:14+00",39.70,paid)"#,
        ]
    );
    assert_eq!(
        rows(
            &mut client,
            "SELECT t::text FROM pgstorm.pos_order_line t WHERE id <= 2 ORDER BY id"
        ),
        ["(1,1,1293,1.00,8.09,8.09)", "(2,1,13,4.00,2.37,9.48)"]
    );
    let nulls: (i64, i64) = {
        let r = client
            .query_one(
                "SELECT (SELECT count(*) FROM pgstorm.pos_order WHERE partner_id IS NULL),
                        (SELECT count(*) FROM pgstorm.res_partner WHERE email IS NULL)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(nulls, (81, 15));
    assert_eq!(
        digests(&mut client),
        [
            "7687641dcd7ff62e9f91a495295051f2",
            "f070dcee29c85494e9af55ec205523ee",
            "9ad7a90e2b7ad6110e8767017d380342",
        ]
    );
    assert!(dataset::clean(&mut client).unwrap());
}

#[test]
fn seed_writes_a_consistent_dataset_and_its_marker() {
    let Some((mut client, _guard)) = target("seed_writes_a_consistent_dataset") else {
        return;
    };
    assert!(dataset::status(&mut client).unwrap().is_none());
    let marker = dataset::seed(&mut client, &opts(2, 7)).unwrap();
    assert_eq!(
        dataset::status(&mut client).unwrap().as_ref(),
        Some(&marker)
    );
    assert_eq!(marker.scale, 2);
    assert_eq!(marker.seed, 7);
    assert_eq!(marker.pgstorm_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(marker.data_end, dataset::data_end());
    assert_eq!(marker.data_start, dataset::data_start());
    assert_eq!(
        dataset::table_counts(&mut client).unwrap(),
        (marker.partners, marker.orders, marker.lines)
    );
    assert_eq!((marker.partners, marker.orders), (200, 2_000));
    assert!((5_000..7_000).contains(&marker.lines), "{}", marker.lines);

    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE o.amount_total <> s.total),
                    count(*) FILTER (WHERE o.create_date < $1 OR o.create_date >= $2),
                    (SELECT count(*) FROM pgstorm.pos_order_line
                      WHERE price_subtotal <> round(qty * price_unit, 2))
             FROM pgstorm.pos_order o
             JOIN (SELECT order_id, sum(price_subtotal) AS total
                   FROM pgstorm.pos_order_line GROUP BY order_id) s ON s.order_id = o.id",
            &[&marker.data_start, &marker.data_end],
        )
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2)
        ),
        (0, 0, 0)
    );

    let indexes: Vec<String> = client
        .query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'pgstorm' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for name in [
        "pos_order_amount_total_idx",
        "pos_order_create_date_idx",
        "pos_order_line_order_id_idx",
        "pos_order_partner_id_idx",
    ] {
        assert!(indexes.iter().any(|i| i == name), "{name} in {indexes:?}");
    }

    // Workload inserts get fresh ids after the explicitly numbered rows.
    let id: i64 = client
        .query_one(
            "INSERT INTO pgstorm.pos_order (partner_id, create_date, amount_total, state)
             VALUES (1, now(), 0, 'draft') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(id, marker.orders + 1);
    assert!(dataset::clean(&mut client).unwrap());
}

#[test]
fn reseed_keeps_other_pgstorm_tables_and_clean_drops_everything() {
    let Some((mut client, _guard)) = target("reseed_keeps_other_pgstorm_tables") else {
        return;
    };
    let mut said = Vec::new();
    let marker = dataset::ensure(&mut client, false, &mut |s| said.push(s.to_string())).unwrap();
    assert_eq!((marker.scale, marker.seed), (1, 1));
    assert_eq!(said.len(), 1, "ensure announces the seed: {said:?}");
    let again = dataset::ensure(&mut client, true, &mut |s| panic!("said {s}")).unwrap();
    assert_eq!(again, marker);

    client
        .batch_execute(
            "CREATE TABLE pgstorm.isolation_accounts (id int PRIMARY KEY, balance int);
             INSERT INTO pgstorm.isolation_accounts VALUES (1, 100);",
        )
        .unwrap();
    dataset::seed(&mut client, &opts(1, 2)).unwrap();
    let kept: i64 = client
        .query_one("SELECT count(*) FROM pgstorm.isolation_accounts", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);

    assert!(dataset::clean(&mut client).unwrap());
    assert!(dataset::status(&mut client).unwrap().is_none());
    assert!(!dataset::clean(&mut client).unwrap());
    assert!(matches!(
        dataset::ensure(&mut client, true, &mut |_| {}),
        Err(DatasetError::NotSeeded)
    ));
}

#[test]
fn a_foreign_pgstorm_schema_is_refused() {
    let Some((mut client, _guard)) = target("a_foreign_pgstorm_schema_is_refused") else {
        return;
    };
    client
        .batch_execute(
            "CREATE SCHEMA pgstorm; CREATE TABLE pgstorm.precious (v text);
             INSERT INTO pgstorm.precious VALUES ('keep me');",
        )
        .unwrap();
    assert!(matches!(
        dataset::status(&mut client),
        Err(DatasetError::ForeignSchema)
    ));
    assert!(matches!(
        dataset::seed(&mut client, &opts(1, 1)),
        Err(DatasetError::ForeignSchema)
    ));
    assert!(matches!(
        dataset::clean(&mut client),
        Err(DatasetError::ForeignSchema)
    ));
    assert!(matches!(
        dataset::ensure(&mut client, false, &mut |_| {}),
        Err(DatasetError::ForeignSchema)
    ));
    let msg = DatasetError::ForeignSchema.to_string();
    assert!(
        msg.contains("\"pgstorm\"") && msg.contains("DROP SCHEMA"),
        "{msg}"
    );
    let v: String = client
        .query_one("SELECT v FROM pgstorm.precious", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, "keep me");
    client.batch_execute("DROP SCHEMA pgstorm CASCADE").unwrap();
}

#[test]
fn invalid_scales_are_refused_before_touching_the_database() {
    let Some((mut client, _guard)) = target("invalid_scales_are_refused") else {
        return;
    };
    for scale in [0, 100_001] {
        assert!(matches!(
            dataset::seed(&mut client, &opts(scale, 1)),
            Err(DatasetError::InvalidScale(s)) if s == scale
        ));
    }
    assert!(dataset::status(&mut client).unwrap().is_none());
}

#[test]
fn parallel_streams_give_the_same_tables_and_index_names_as_one() {
    let Some((mut client, _guard)) = target("parallel_streams_give_the_same_tables") else {
        return;
    };
    let dsn = std::env::var("PGSTORM_TEST_DSN").unwrap_or_else(|_| common::database("dataset"));
    let connect = || Client::connect(&dsn, NoTls);
    dataset::seed(&mut client, &opts(2, 5)).unwrap();
    let one = digests(&mut client);
    let indexes = |c: &mut Client| -> Vec<String> {
        c.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'pgstorm' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    };
    let names = indexes(&mut client);
    let marker = dataset::seed_parallel(&mut client, &connect, 3, &opts(2, 5)).unwrap();
    assert_eq!(digests(&mut client), one);
    assert_eq!(indexes(&mut client), names);
    assert!(
        names.contains(&"pos_order_create_date_idx".to_string())
            && names.contains(&"pos_order_line_pkey".to_string()),
        "{names:?}"
    );
    assert_eq!(marker.orders, 2_000);
    assert!(dataset::clean(&mut client).unwrap());
}

#[test]
fn a_seed_drops_what_an_interrupted_one_left_behind() {
    let Some((mut client, _guard)) = target("a_seed_drops_what_an_interrupted_one_left") else {
        return;
    };
    dataset::seed(&mut client, &opts(1, 1)).unwrap();
    // What a seed cut short after loading its first staging table leaves behind.
    client
        .batch_execute("CREATE TABLE pgstorm.seed_pos_order_line (id bigint, junk text)")
        .unwrap();
    assert_eq!(dataset::status(&mut client).unwrap().unwrap().scale, 1);
    let marker = dataset::seed(&mut client, &opts(2, 1)).unwrap();
    assert_eq!(marker.scale, 2);
    let staging: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'pgstorm' AND c.relname LIKE 'seed\\_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(staging, 0);
    assert_eq!(dataset::table_counts(&mut client).unwrap().1, marker.orders);
    assert!(dataset::clean(&mut client).unwrap());
}

#[test]
fn a_parallel_seed_leaves_validated_keys_and_vacuumed_analyzed_tables() {
    let Some((mut client, _guard)) = target("a_parallel_seed_leaves_validated_keys") else {
        return;
    };
    let dsn = std::env::var("PGSTORM_TEST_DSN").unwrap_or_else(|_| common::database("dataset"));
    let connect = || Client::connect(&dsn, NoTls);
    dataset::seed_parallel(&mut client, &connect, 4, &opts(2, 3)).unwrap();
    let constraints: Vec<(String, String, bool)> = client
        .query(
            "SELECT conname::text, contype::text, convalidated FROM pg_constraint \
             WHERE connamespace = 'pgstorm'::regnamespace AND contype IN ('p', 'f') \
               AND conrelid <> 'pgstorm.pgstorm_meta'::regclass ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("pos_order_line_order_id_fkey", "f"),
        ("pos_order_line_pkey", "p"),
        ("pos_order_partner_id_fkey", "f"),
        ("pos_order_pkey", "p"),
        ("res_partner_pkey", "p"),
    ];
    assert_eq!(
        constraints,
        expected.map(|(n, t)| (n.to_string(), t.to_string(), true)),
    );
    // Positive control: the foreign key really is enforced.
    let err = client
        .execute(
            "INSERT INTO pgstorm.pos_order_line (order_id, product_id, qty, price_unit, \
             price_subtotal) VALUES (-1, 1, 1, 1, 1)",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    );
    // Statistics for the planner, and every heap page all-visible (COPY FREEZE, then VACUUM) for
    // index-only scans.
    for r in client
        .query(
            "SELECT c.relname::text, c.relpages, c.relallvisible, s.last_analyze IS NOT NULL \
             FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid \
             WHERE c.relnamespace = 'pgstorm'::regnamespace AND c.relname <> 'pgstorm_meta'",
            &[],
        )
        .unwrap()
    {
        let (name, pages, visible, analyzed): (String, i32, i32, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        assert!(
            pages > 0 && visible == pages && analyzed,
            "{name}: {pages} pages, {visible} all-visible, analyzed {analyzed}"
        );
    }
    assert!(dataset::clean(&mut client).unwrap());
}

/// A parallel seed whose extra loading connections cannot be opened fails with the step that
/// failed, promptly, and loses nothing: the previous dataset stays in place and the next seed
/// cleans up what the failed one left.
#[test]
fn a_parallel_seed_whose_loaders_cannot_connect_fails_and_keeps_the_previous_dataset() {
    let Some((mut client, _guard)) = target("a_parallel_seed_whose_loaders_cannot_connect") else {
        return;
    };
    dataset::seed(&mut client, &opts(1, 1)).unwrap();
    let before = digests(&mut client);
    // Port 1 on loopback: nothing listens there, so each connect is refused at once.
    let refused = || Client::connect("host=127.0.0.1 port=1 user=x dbname=x", NoTls);
    let started = std::time::Instant::now();
    let err = dataset::seed_parallel(&mut client, &refused, 3, &opts(2, 1))
        .expect_err("loaders that cannot connect fail the seed");
    let took = started.elapsed();
    assert!(
        err.to_string().contains("opening a loading connection"),
        "the error names the failed step: {err}"
    );
    // Generous for a loaded 2-core VM: a scale-2 seed is a fraction of a second of work; what
    // this rules out is a coordinator left waiting on a loader that is gone.
    assert!(took < std::time::Duration::from_secs(60), "took {took:?}");
    assert_eq!(dataset::status(&mut client).unwrap().unwrap().scale, 1);
    assert_eq!(digests(&mut client), before);
    let marker = dataset::seed(&mut client, &opts(2, 1)).unwrap();
    assert_eq!(marker.scale, 2);
    assert!(dataset::clean(&mut client).unwrap());
}
