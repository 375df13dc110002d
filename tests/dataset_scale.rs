//! Dataset scale against a real sandbox: `-s` reseeds when the seeded scale differs, every result
//! records the bytes the load touched, and a dataset smaller than shared_buffers is flagged
//! (positive control: scale 1 under the default 128MB; negative control: the same dataset on a
//! server whose shared_buffers is smaller than it).

mod common;

use std::path::Path;
use std::time::Duration;

use pgstorm::dataset::{self, DatasetError, Wanted};
use pgstorm::sandbox::SandboxOptions;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;

const CODE: &str = "dataset_fits_in_shared_buffers";

/// A short closed-loop load at `-s scale` on `dsn`, archived under `results`.
fn options(dsn: String, results: &Path, scale: u32) -> QueriesOptions {
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(dsn),
            sandbox_max_connections: None,
            ..Default::default()
        },
        scale: Some(scale),
        mix: "point=3,aggregation=1".into(),
        monitor: None,
        print_summary: false,
        ..QueriesOptions::default()
    };
    o.archive.results_dir = results.to_path_buf();
    o.engine.clients = 2;
    o.engine.duration = Some(Duration::from_secs(1));
    o.engine.pin = false;
    o
}

#[test]
fn a_scale_1_run_records_its_bytes_and_warns_about_shared_buffers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = queries::run(&options(common::database("scale1"), tmp.path(), 1)).unwrap();
    common::assert_run_json_matches_schema(&out.dir);
    let doc = &out.doc;
    assert_eq!(doc.dataset.as_ref().unwrap().scale, 1);
    let size = doc.data_size.as_ref().expect("data_size recorded");
    let names: Vec<&str> = size.tables.iter().map(|t| t.name.as_str()).collect();
    // point and aggregation read pos_order only: the lines and partners are not the load's data.
    assert_eq!(names, ["pgstorm.pos_order"]);
    assert_eq!(
        size.total_bytes,
        size.tables.iter().map(|t| t.bytes).sum::<i64>()
    );
    assert_eq!(size.shared_buffers_bytes, 128 * 1024 * 1024);
    let w = common::warning(doc, CODE);
    assert!(w.message.contains("shared_buffers"), "{}", w.message);
    assert!(
        w.message
            .contains("memory settings cannot show an effect on this dataset"),
        "{}",
        w.message
    );
}

#[test]
fn a_dataset_larger_than_shared_buffers_is_not_flagged() {
    // 128kB is PostgreSQL's smallest shared_buffers; scale 1 takes about half a megabyte.
    let sb = common::fresh_sandbox(&SandboxOptions {
        max_connections: 20,
        settings: vec![("shared_buffers".into(), "128kB".into())],
        ..SandboxOptions::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = queries::run(&options(sb.dsn(), tmp.path(), 1)).unwrap();
    let size = out.doc.data_size.as_ref().expect("data_size recorded");
    assert!(size.total_bytes > size.shared_buffers_bytes, "{size:?}");
    assert!(
        out.doc.warnings.iter().all(|w| w.code != CODE),
        "{:?}",
        out.doc.warnings
    );
}

#[test]
fn a_different_scale_reseeds_and_no_seed_refuses_it() {
    let mut c = common::client_of("reseed");
    c.batch_execute("DROP SCHEMA IF EXISTS pgstorm CASCADE")
        .unwrap();
    let mut said: Vec<String> = Vec::new();
    // The sandbox is local: each seed is first checked against its data directory's free space,
    // which the test's superuser can read.
    let (dir, free) = dataset::disk::data_directory_free(&mut c).expect("free space readable");
    dataset::disk::check_fits(2, &dir, free).unwrap();
    let want = |scale, no_seed| Wanted {
        scale: Some(scale),
        no_seed,
        local: true,
        ..Default::default()
    };
    let first =
        dataset::ensure_scale(&mut c, want(1, false), &mut |s| said.push(s.into())).unwrap();
    assert_eq!(first.scale, 1);
    // Same scale: nothing to do, nothing said.
    dataset::ensure_scale(&mut c, want(1, true), &mut |s| panic!("said {s}")).unwrap();
    assert!(matches!(
        dataset::ensure_scale(&mut c, want(2, true), &mut |_| {}),
        Err(DatasetError::ScaleMismatch {
            seeded: 1,
            asked: 2
        })
    ));
    let second =
        dataset::ensure_scale(&mut c, want(2, false), &mut |s| said.push(s.into())).unwrap();
    assert_eq!((second.scale, second.orders), (2, 2_000));
    // The per-scale estimate behind the disk check and the profiles holds within a third.
    let bytes: i64 = c
        .query_one(
            "SELECT sum(pg_total_relation_size(format('pgstorm.%I', t)::regclass))::bigint \
             FROM unnest(ARRAY['res_partner', 'pos_order', 'pos_order_line']) t",
            &[],
        )
        .unwrap()
        .get(0);
    let estimate = 2 * dataset::BYTES_PER_SCALE as i64;
    assert!(
        (estimate * 2 / 3..estimate * 4 / 3).contains(&bytes),
        "scale 2 takes {bytes} bytes, estimate {estimate}"
    );
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[1].contains("scale 1") && said[1].contains("reseeding scale 2"),
        "{said:?}"
    );
    // No scale asked: whatever is seeded.
    let any =
        dataset::ensure_scale(&mut c, Wanted::default(), &mut |s| panic!("said {s}")).unwrap();
    assert_eq!(any.scale, 2);
}
