//! `--server-metrics`: the server host's node_exporter scraped beside the load. A fixture agent
//! (a loopback HTTP server replaying a recorded node_exporter page whose counters advance at a
//! chosen CPU busy share) feeds run.json, resources.csv and the stability criteria; a busy agent
//! makes the CPU criterion fail through the real binary; an agent that never answers leaves one
//! warning and a run that exits 0; and, when Debian's prometheus-node-exporter is installed, the
//! real agent is scraped too.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgstorm::analysis::criteria::{evaluate, Thresholds};
use pgstorm::monitor::{MetricsUrl, Monitor, MonitorConfig};
use pgstorm::report::findings::{CriterionResult, CriterionStatus};
use pgstorm::report::model::RunDocument;
use pgstorm::scenarios::queries::{self, QueriesOptions};
use pgstorm::scenarios::session::TargetOptions;

const RECORDED: &str = include_str!("corpus/node_exporter/first.prom");
const INTERVAL: Duration = Duration::from_millis(250);
/// Memory in use on the fixture's host (%), and its MemTotal.
const MEMORY_USED: f64 = 40.0;
const MEM_TOTAL: f64 = 8.0 * 1024.0 * 1024.0 * 1024.0;
/// CPU seconds each of the recorded page's 2 CPUs advances per scrape.
const CPU_STEP_S: f64 = 0.25;
/// Basic-auth credentials the fixture demands, so that a leak of the password would show.
const USER: &str = "scraper";
const PASSWORD: &str = "n0de-s3cret";

/// The recorded page after `n` scrapes at `busy` (0..1) CPU: user and system take `busy` of each
/// CPU's time, idle the rest; disks and network advance by fixed amounts per scrape.
fn page(n: u64, busy: f64) -> String {
    let n = n as f64;
    let mut out = String::new();
    for line in RECORDED.lines() {
        let Some((key, value)) = line.rsplit_once(' ').filter(|_| !line.starts_with('#')) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let v: f64 = value.parse().unwrap();
        let advance = |per_scrape: f64| v + n * per_scrape;
        let v = match key {
            k if k.starts_with("node_cpu_seconds_total") => {
                if k.contains("mode=\"user\"") {
                    advance(CPU_STEP_S * busy * 0.75)
                } else if k.contains("mode=\"system\"") {
                    advance(CPU_STEP_S * busy * 0.25)
                } else if k.contains("mode=\"idle\"") {
                    advance(CPU_STEP_S * (1.0 - busy))
                } else {
                    v
                }
            }
            "node_time_seconds" => advance(CPU_STEP_S),
            "node_memory_MemTotal_bytes" => MEM_TOTAL,
            "node_memory_MemAvailable_bytes" => MEM_TOTAL * (1.0 - MEMORY_USED / 100.0),
            k if k.contains("device=\"vda\"") => {
                if k.starts_with("node_disk_reads_completed")
                    || k.starts_with("node_disk_writes_completed")
                {
                    advance(50.0)
                } else if k.starts_with("node_disk_read_time")
                    || k.starts_with("node_disk_write_time")
                {
                    // 50 + 50 operations taking 0.2 s in all: 2 ms each.
                    advance(0.1)
                } else if k.contains("bytes") {
                    advance(50.0 * 8192.0)
                } else {
                    advance(0.05)
                }
            }
            k if k.contains("device=\"eth0\"") => advance(1_000_000.0),
            _ => v,
        };
        out.push_str(&format!("{key} {v}\n"));
    }
    out
}

/// A node_exporter stand-in on a loopback port: serves [`page`] at `busy`, one scrape further per
/// request, over keep-alive connections, and only with the right basic-auth header. It stops
/// when dropped (and after two minutes in any case).
struct Agent {
    port: u16,
    scrapes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Agent {
    fn start(busy: f64) -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let scrapes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, halt) = (scrapes.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !halt.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (n, halt) = (n.clone(), halt.clone());
                        std::thread::spawn(move || serve(conn, busy, &n, &halt));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Agent {
            port,
            scrapes,
            stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{USER}:{PASSWORD}@127.0.0.1:{}/metrics", self.port)
    }

    fn shown(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.port)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, busy: f64, scrapes: &AtomicU64, stop: &AtomicBool) {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let expected = format!("authorization: basic {}", token.to_lowercase());
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(k) => request.extend_from_slice(&buf[..k]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
        request.drain(..end + 4);
        let reply = if head.lines().any(|l| l.trim() == expected) {
            let body = page(scrapes.fetch_add(1, Ordering::Relaxed), busy);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: \
                 {}\r\n\r\n{body}",
                body.len()
            )
        } else {
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_string()
        };
        if conn.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn criterion<'a>(c: &'a [CriterionResult], id: &str) -> &'a CriterionResult {
    c.iter().find(|r| r.id == id).unwrap()
}

fn read_doc(dir: &Path) -> RunDocument {
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

#[test]
fn agent_figures_reach_run_json_resources_csv_and_the_criteria() {
    let agent = Agent::start(0.30);
    let tmp = tempfile::tempdir().unwrap();
    let mut o = QueriesOptions {
        target: TargetOptions {
            dsn: Some(common::database("srvmet_fixture")),
            sandbox_max_connections: None,
            ..Default::default()
        },
        monitor: Some(MonitorConfig {
            interval: INTERVAL,
            server_metrics: Some(MetricsUrl::parse(&agent.url()).unwrap()),
            ..MonitorConfig::default()
        }),
        ..QueriesOptions::default()
    };
    o.archive.results_dir = tmp.path().to_path_buf();
    o.archive.label = "srvmet".into();
    o.print_summary = false;
    o.engine.clients = 2;
    o.engine.duration = Some(Duration::from_secs(2));
    o.engine.pin = false;
    let out = queries::run(&o).unwrap();
    let doc = read_doc(&out.dir);
    let m = doc.monitoring.as_ref().unwrap();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let h = m.server_host.as_ref().expect("server host series");
    assert_eq!(h.source, agent.shown());
    assert_eq!((h.cpus, h.memory_bytes), (2, MEM_TOTAL as u64));
    assert_eq!(h.failed, 0);
    assert!(h.samples.len() >= 4, "{} samples", h.samples.len());
    for s in &h.samples {
        assert!((s.cpu_percent - 30.0).abs() < 0.5, "{s:?}");
        assert!((s.cpu_modes["user"] - 22.5).abs() < 0.5, "{s:?}");
        assert!((s.memory_percent - MEMORY_USED).abs() < 0.01, "{s:?}");
        let vda = s.disks.iter().find(|d| d.device == "vda").unwrap();
        assert!((vda.await_ms.unwrap() - 2.0).abs() < 0.01, "{vda:?}");
        // Rates run on the agent's clock: 50 writes per 0.25 s.
        assert!((vda.writes_s - 200.0).abs() < 0.5, "{vda:?}");
        assert!(s
            .net
            .iter()
            .any(|n| n.device == "eth0" && n.rx_bytes_s > 0.0));
    }
    assert!(h.summary.samples >= 2, "{:?}", h.summary);
    // Every scrape answered; the first was the baseline the first sample's rates start from.
    assert_eq!(h.scrapes, agent.scrapes.load(Ordering::Relaxed));
    assert_eq!(h.scrapes, h.samples.len() as u64 + 1);

    // The stability criteria read the agent's figures.
    let c = evaluate(&doc, &Thresholds::default()).criteria;
    let cpu = criterion(&c, "server_cpu_pct");
    assert_eq!(cpu.status, CriterionStatus::Pass, "{cpu:?}");
    assert!((cpu.measured.unwrap() - 30.0).abs() < 0.5, "{cpu:?}");
    assert!(cpu.detail.contains(&agent.shown()), "{}", cpu.detail);
    let mem = criterion(&c, "server_memory_pct");
    assert_eq!(mem.status, CriterionStatus::Pass, "{mem:?}");
    assert!(
        (mem.measured.unwrap() - MEMORY_USED).abs() < 0.01,
        "{mem:?}"
    );

    // resources.csv carries the server host's columns, filled on the agent's ticks.
    let csv = std::fs::read_to_string(out.dir.join("resources.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for col in [
        "server_host_cpu_percent",
        "server_host_memory_percent",
        "server_host_cpu_user_percent",
        "server_host_disk_vda_await_ms",
        "server_host_net_eth0_rx_bytes_s",
    ] {
        assert!(header.contains(&col), "{col} not in {header:?}");
    }
    let cpu_col = header
        .iter()
        .position(|c| *c == "server_host_cpu_percent")
        .unwrap();
    let filled = lines
        .filter(|l| {
            l.split(',')
                .nth(cpu_col)
                .is_some_and(|v| (v.parse::<f64>().unwrap_or(0.0) - 30.0).abs() < 0.5)
        })
        .count();
    assert_eq!(filled, h.samples.len());

    // The password the URL carried is nowhere in the result.
    for f in ["run.json", "resources.csv"] {
        let text = std::fs::read_to_string(out.dir.join(f)).unwrap();
        assert!(!text.contains(PASSWORD), "{f} holds the password");
    }
    common::assert_run_json_matches_schema(&out.dir);
    let summary = pgstorm::report::summary::render(&doc);
    assert!(
        summary.contains("server host (http://127.0.0.1:"),
        "{summary}"
    );
}

#[test]
fn a_busy_server_host_fails_the_cpu_criterion_of_pgstorm_run() {
    let agent = Agent::start(0.95);
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgstorm"))
        .args([
            "run",
            "--dsn",
            &common::database("srvmet_busy"),
            "--results-dir",
        ])
        .arg(tmp.path())
        .args(["-c", "2", "-T", "2", "--warmup", "0", "--mix", "point=1"])
        .args(["--server-metrics", &agent.url()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("success criterion failed: server_cpu_pct"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    let dir = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .find(|e| {
            e.path().join("run.json").is_file()
                && !e.file_name().to_string_lossy().ends_with("-connections")
        })
        .unwrap()
        .path();
    let doc = read_doc(&dir);
    let c = &doc.criteria.as_ref().unwrap().criteria;
    let cpu = criterion(c, "server_cpu_pct");
    assert!((cpu.measured.unwrap() - 95.0).abs() < 0.5, "{cpu:?}");
    // Memory is judged from the same agent, and passes.
    assert_eq!(
        criterion(c, "server_memory_pct").status,
        CriterionStatus::Pass
    );
    // The command line recorded in run.json keeps the user name, not the password.
    assert!(!std::fs::read_to_string(dir.join("run.json"))
        .unwrap()
        .contains(PASSWORD));
}

#[test]
fn an_agent_that_never_answers_is_one_warning_and_the_run_exits_0() {
    // Connections complete in the kernel's backlog, and no reply ever comes.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/metrics",
        silent.local_addr().unwrap().port()
    );
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().to_str().unwrap();
    let dsn = common::database("srvmet_silent");
    let (code, stderr) = common::run_pgstorm(&[
        "queries",
        "--dsn",
        &dsn,
        "--results-dir",
        results,
        "-c",
        "1",
        "-T",
        "1",
        "--sample-interval",
        "250ms",
        "--mix",
        "point=1",
        "--server-metrics",
        &url,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let announced = stderr.matches("cannot scrape server metrics from").count();
    assert_eq!(announced, 1, "{stderr}");
    assert!(stderr.contains(&url), "{stderr}");
    let dir = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .find(|e| e.path().join("run.json").is_file())
        .unwrap()
        .path();
    let doc = read_doc(&dir);
    let h = doc
        .monitoring
        .as_ref()
        .unwrap()
        .server_host
        .as_ref()
        .unwrap();
    assert!(h.samples.is_empty());
    assert!(
        h.scrapes >= 4 && h.failed == h.scrapes,
        "{} of {}",
        h.failed,
        h.scrapes
    );
    let w = common::warning(&doc, "monitor_incomplete");
    assert!(
        w.message.contains(&url) && w.message.contains("scrapes failed"),
        "{}",
        w.message
    );
    // The load host's own samples were taken all the same.
    assert!(!doc
        .monitoring
        .as_ref()
        .unwrap()
        .host
        .as_ref()
        .unwrap()
        .samples
        .is_empty());
    drop(silent);
}

#[test]
fn a_bad_server_metrics_url_is_a_usage_error_without_the_password() {
    let (code, stderr) = common::run_pgstorm(&[
        "queries",
        "--server-metrics",
        "https://u:hunter2@db1:9100/metrics",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--server-metrics") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    let (code, stderr) = common::run_pgstorm(&[
        "queries",
        "--no-monitor",
        "--server-metrics",
        "http://db1:9100",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("sampling is off"), "{stderr}");
}

/// Debian's prometheus-node-exporter, when installed: its real page parses into plausible figures.
#[test]
fn the_real_node_exporter_when_installed() {
    let Ok(port) = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
    else {
        return;
    };
    let child = std::process::Command::new("prometheus-node-exporter")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipped: prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)");
        return;
    };
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = Monitor::start(
        MonitorConfig {
            interval: Duration::from_millis(500),
            server_metrics: Some(MetricsUrl::parse(&url).unwrap()),
            ..MonitorConfig::default()
        },
        None,
        None,
    );
    std::thread::sleep(Duration::from_millis(1800));
    let m = m.stop(None);
    let _ = child.kill();
    let _ = child.wait();
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let h = m.server_host.unwrap();
    assert!(h.cpus >= 1 && h.memory_bytes > 0);
    assert!(h.samples.len() >= 2, "{h:?}");
    for s in &h.samples {
        let total: f64 = s.cpu_modes.values().sum();
        assert!((total - 100.0).abs() < 1e-6, "{s:?}");
        assert!(
            (0.0..=100.0).contains(&s.cpu_percent) && s.memory_percent > 0.0,
            "{s:?}"
        );
    }
}
