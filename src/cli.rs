//! Command-line definitions (argh) only: no logic. Flags mirror pgbench's where the meaning is the
//! same (`-c`, `-T`, `-t`, `-R`, `-P`, `-M`). Every duration, rate, count and size is parsed by a
//! `from_str_fn` of `args` into a validated value, so a struct that argh built is in range.

use argh::FromArgs;

use crate::args::{self, ConnectRate, Count, Percent, Rate, SampleInterval, Secs, Span};
use crate::output::{self, OutputFormat, ProgressFormat};

/// pgstorm: PostgreSQL load and behaviour testing with numbers you can trust.
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Command,
}

/// Subcommands.
// Parsed once per process: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Run(RunArgs),
    Queries(QueriesArgs),
    Analyze(AnalyzeArgs),
    Isolation(IsolationArgs),
    Connections(ConnectionsArgs),
    Seed(SeedArgs),
    Clean(CleanArgs),
    Sandbox(SandboxArgs),
    Schema(SchemaArgs),
    Compare(CompareArgs),
    Report(ReportArgs),
    List(ListArgs),
    Trend(TrendArgs),
    Merge(MergeArgs),
    Sweep(SweepArgs),
    Study(StudyArgs),
}

/// Run the whole suite with a profile, evaluate it, and archive one result folder.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct RunArgs {
    /// profile: quick (about 1 minute) or standard (100 clients, 5 minutes)
    #[argh(option, default = "String::from(\"quick\")")]
    pub profile: String,
    /// target as a URL or conninfo string (default: PG* variables, else a throwaway sandbox)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// label of the result folder (default: the profile name)
    #[argh(option)]
    pub label: Option<String>,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// dataset scale: reseed the POS dataset when the seeded scale differs (default: the profile's: quick takes the seeded one, standard 1000)
    #[argh(option, short = 's', from_str_fn(args::scale))]
    pub scale: Option<u32>,
    /// fail instead of seeding when the pgstorm dataset is missing or has another scale
    #[argh(switch)]
    pub no_seed: bool,
    /// skip the VACUUM (ANALYZE) of the workload's tables and the TRUNCATE of pgbench_history
    /// before each run, as pgbench -n
    #[argh(switch, short = 'n')]
    pub no_vacuum: bool,
    /// SQL file run on a connection of its own before each run, after the vacuum and checkpoint
    /// (if it fails, pgstorm exits 3 before any load)
    #[argh(option)]
    pub pre_sql: Option<String>,
    /// SQL file run on a connection of its own after each run (if it fails: a warning, results kept)
    #[argh(option)]
    pub post_sql: Option<String>,
    /// run the suite N times, one result folder each plus a set folder for compare (default 1)
    #[argh(option, default = "1", from_str_fn(args::repeat))]
    pub repeat: u32,
    /// wait until this UTC time (RFC 3339) before the load starts, so several machines start together
    #[argh(option)]
    pub start_at: Option<String>,
    /// success criteria file: JSON object of criterion id to threshold, e.g. {"mean_latency_ms": 5}
    #[argh(option)]
    pub criteria: Option<String>,
    /// override one criterion's threshold, e.g. mean_latency_ms=2.5 (repeatable)
    #[argh(option)]
    pub criterion: Vec<String>,
    /// let the advisor judge every schema, not only pgstorm's own tables
    #[argh(switch)]
    pub all_schemas: bool,
    /// clients instead of the profile's
    #[argh(option, short = 'c', from_str_fn(args::count))]
    pub clients: Option<Count>,
    /// run the query load on N threads that share the clients' connections like pgbench -j (nonblocking, no pool) instead of one thread per client
    #[argh(option, short = 'j', from_str_fn(args::count))]
    pub jobs: Option<Count>,
    /// measured seconds instead of the profile's
    #[argh(option, short = 'T', from_str_fn(args::secs))]
    pub time: Option<Secs>,
    /// warmup seconds instead of the profile's
    #[argh(option, from_str_fn(args::secs_or_zero))]
    pub warmup: Option<Secs>,
    /// query mix instead of the default, e.g. simple=4,aggregation=1
    #[argh(option)]
    pub mix: Option<String>,
    /// the database host's Prometheus node_exporter, e.g. http://db1:9100/metrics: scraped every sample into resources.csv and run.json, and judged by the server CPU/memory criteria
    #[argh(option)]
    pub server_metrics: Option<String>,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
    /// progress lines (stderr): text (default) or ndjson (one JSON object per line)
    #[argh(
        option,
        default = "ProgressFormat::Text",
        from_str_fn(output::progress_format)
    )]
    pub progress_format: ProgressFormat,
}

/// Run a query load and report what to change: index usage, missing indexes, spills, cache, settings.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "analyze")]
pub struct AnalyzeArgs {
    /// target as a URL or conninfo string (default: PG* variables, else a throwaway sandbox)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// concurrent clients of the load (default 10)
    #[argh(
        option,
        short = 'c',
        default = "Count::new(10)",
        from_str_fn(args::count)
    )]
    pub clients: Count,
    /// measured seconds of load (default 10)
    #[argh(
        option,
        short = 'T',
        default = "Secs::new(10)",
        from_str_fn(args::secs)
    )]
    pub time: Secs,
    /// query mix, e.g. simple=4,aggregation=1 (default: the standard mix)
    #[argh(option)]
    pub mix: Option<String>,
    /// protocol: prepared (default), extended or simple
    #[argh(option, short = 'M', default = "String::from(\"prepared\")")]
    pub protocol: String,
    /// let the advisor judge every schema, not only pgstorm's own tables
    #[argh(switch)]
    pub all_schemas: bool,
    /// the database host's Prometheus node_exporter, e.g. http://db1:9100/metrics: scraped every sample into resources.csv and run.json, and judged by the server CPU/memory criteria
    #[argh(option)]
    pub server_metrics: Option<String>,
    /// dataset scale: reseed the POS dataset when the seeded scale differs (default: the seeded one, else 1)
    #[argh(option, short = 's', from_str_fn(args::scale))]
    pub scale: Option<u32>,
    /// fail instead of seeding when the pgstorm dataset is missing or has another scale
    #[argh(switch)]
    pub no_seed: bool,
    /// skip the VACUUM (ANALYZE) of the workload's tables and the TRUNCATE of pgbench_history
    /// before each run, as pgbench -n
    #[argh(switch, short = 'n')]
    pub no_vacuum: bool,
    /// SQL file run on a connection of its own before each run, after the vacuum and checkpoint
    /// (if it fails, pgstorm exits 3 before any load)
    #[argh(option)]
    pub pre_sql: Option<String>,
    /// SQL file run on a connection of its own after each run (if it fails: a warning, results kept)
    #[argh(option)]
    pub post_sql: Option<String>,
    /// label of the result folder (default: analyze)
    #[argh(option, default = "String::from(\"analyze\")")]
    pub label: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
}

/// Measure latency and throughput of the query mix under load.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "queries")]
pub struct QueriesArgs {
    /// target as a URL or conninfo string (default: PG* variables, else a throwaway sandbox)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// concurrent clients: one connection each, and one thread each unless -j is given (default 10)
    #[argh(
        option,
        short = 'c',
        default = "Count::new(10)",
        from_str_fn(args::count)
    )]
    pub clients: Count,
    /// threads that share the clients' connections like pgbench -j (nonblocking, no pool)
    #[argh(option, short = 'j', from_str_fn(args::count))]
    pub jobs: Option<Count>,
    /// duration in seconds, after the warmup (default 10)
    #[argh(option, short = 'T', from_str_fn(args::secs))]
    pub time: Option<Secs>,
    /// transactions per client instead of a duration
    #[argh(option, short = 't', from_str_fn(args::transactions))]
    pub transactions: Option<u64>,
    /// total rate in transactions/s: open loop, latency measured from the intended start
    #[argh(option, short = 'R', from_str_fn(args::rate))]
    pub rate: Option<Rate>,
    /// arrivals in open loop: poisson (default, like pgbench) or uniform
    #[argh(option, default = "String::from(\"poisson\")")]
    pub arrival: String,
    /// print a progress line every N seconds
    #[argh(option, short = 'P', from_str_fn(args::secs_or_zero))]
    pub progress: Option<Secs>,
    /// protocol: prepared (default), extended or simple
    #[argh(option, short = 'M', default = "String::from(\"prepared\")")]
    pub protocol: String,
    /// query mix, e.g. point=10,join=1 (types: simple, join, aggregation, transaction, index, point)
    #[argh(option)]
    pub mix: Option<String>,
    /// a pgbench script file as a query type, with an optional weight: -f file.sql@5 (repeatable)
    #[argh(option, short = 'f')]
    pub file: Vec<String>,
    /// a pgbench built-in script: tpcb-like, simple-update or select-only, optional @weight (repeatable)
    #[argh(option, short = 'b')]
    pub builtin: Vec<String>,
    /// tries per transaction on serialization or deadlock failures, as pgbench (default 1: no retry; 0: until the run ends)
    #[argh(option, default = "1")]
    pub max_tries: u32,
    /// report the mean latency of every script command (pgbench -r)
    #[argh(switch, short = 'r')]
    pub report_per_command: bool,
    /// pgbench -S: the built-in select-only script (same as -b select-only)
    #[argh(switch, short = 'S')]
    pub select_only: bool,
    /// pgbench -N: the built-in simple-update script (same as -b simple-update)
    #[argh(switch, short = 'N')]
    pub skip_some_updates: bool,
    /// pgbench -L: latency limit in ms; slower transactions are counted as late, and with -R
    /// those already this late when due are skipped
    #[argh(option, short = 'L', from_str_fn(args::latency_limit))]
    pub latency_limit: Option<f64>,
    /// pgbench -l: write pgbench's transaction log into the result folder
    #[argh(switch, short = 'l')]
    pub log: bool,
    /// pgbench --log-prefix: file name prefix of -l's logs (default pgbench_log)
    #[argh(option)]
    pub log_prefix: Option<String>,
    /// pgbench --sampling-rate: fraction of transactions -l logs, in (0, 1]
    #[argh(option, from_str_fn(args::sampling_rate))]
    pub sampling_rate: Option<f64>,
    /// pgbench --aggregate-interval: -l writes one line per this many seconds
    #[argh(option, from_str_fn(args::secs))]
    pub aggregate_interval: Option<Secs>,
    /// pgbench --failures-detailed: -l names serialization and deadlock failures
    #[argh(switch)]
    pub failures_detailed: bool,
    /// pgbench --progress-timestamp: progress lines show Unix time instead of time since start
    #[argh(switch)]
    pub progress_timestamp: bool,
    /// pgbench --show-script: print the built-in script NAME and exit
    #[argh(option)]
    pub show_script: Option<String>,
    /// pgbench -V: print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,
    /// pgbench -C: a new connection for every transaction (connect times in their own histogram)
    #[argh(switch, short = 'C')]
    pub connect: bool,
    /// pgbench -v: vacuum all four pgbench tables before the run, pgbench_accounts included (pgstorm's run hygiene vacuums every workload table anyway; -n still skips it)
    #[argh(switch, short = 'v')]
    pub vacuum_all: bool,
    /// pgbench -d: refused; pgstorm has no debug trace (see the server log)
    #[argh(switch, short = 'd')]
    pub debug: bool,
    /// pgbench --exit-on-abort: refused, as pgbench 15 refuses it (a client abort already exits 2)
    #[argh(switch)]
    pub exit_on_abort: bool,
    /// pgbench --verbose-errors: print each failed try of a serialization or deadlock failure, and whether it is retried, on stderr
    #[argh(switch)]
    pub verbose_errors: bool,
    /// dataset scale, as pgbench's -s: reseed the POS dataset when the seeded scale differs, and
    /// :scale of custom scripts (default: the seeded dataset, else 1; :scale 1; built-in scripts count pgbench_branches)
    #[argh(option, short = 's', from_str_fn(args::scale))]
    pub scale: Option<u32>,
    /// define a script variable: -D name=value (repeatable)
    #[argh(option, short = 'D')]
    pub define: Vec<String>,
    /// seconds of warmup excluded from the totals (default 0)
    #[argh(option, default = "Secs::new(0)", from_str_fn(args::secs_or_zero))]
    pub warmup: Secs,
    /// statement_timeout of every connection, e.g. 5s or 500ms (default 5s)
    #[argh(option, default = "Span::secs(5)", from_str_fn(args::span))]
    pub statement_timeout: Span,
    /// pool checkout timeout, e.g. 30s (default 30s)
    #[argh(option, default = "Span::secs(30)", from_str_fn(args::span))]
    pub checkout_timeout: Span,
    /// end the run as lost (exit 3) when no connection is open and reconnects keep failing
    /// this long, e.g. 5s (default 5s)
    #[argh(option, default = "Span::secs(5)", from_str_fn(args::span))]
    pub lost_grace: Span,
    /// time-series interval, e.g. 1s (default 1s)
    #[argh(option, default = "Span::secs(1)", from_str_fn(args::span))]
    pub interval: Span,
    /// do not pin worker threads to cores
    #[argh(switch)]
    pub no_pin: bool,
    /// random seed of the workers (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// pgbench's spelling of --seed: an integer, time or rand
    #[argh(option)]
    pub random_seed: Option<String>,
    /// resource sampling interval, e.g. 1s or 500ms (at least 200ms; 0 turns sampling off)
    #[argh(
        option,
        default = "SampleInterval(Some(Span::secs(1)))",
        from_str_fn(args::sample_interval)
    )]
    pub sample_interval: SampleInterval,
    /// do not sample host and server resources (same as --sample-interval 0)
    #[argh(switch)]
    pub no_monitor: bool,
    /// resource samples kept per sampler; older ones are dropped (default 1000)
    #[argh(option, default = "1000", from_str_fn(args::history))]
    pub history: usize,
    /// host CPU % above which an alert is raised (default 90)
    #[argh(option, default = "Percent::new(90.0)", from_str_fn(args::percent))]
    pub alert_cpu: Percent,
    /// host memory % above which an alert is raised (default 95)
    #[argh(option, default = "Percent::new(95.0)", from_str_fn(args::percent))]
    pub alert_memory: Percent,
    /// the database host's Prometheus node_exporter, e.g. http://db1:9100/metrics: scraped every sample into resources.csv and run.json, and judged by the server CPU/memory criteria
    #[argh(option)]
    pub server_metrics: Option<String>,
    /// fail instead of seeding when the pgstorm dataset is missing or has another scale
    #[argh(switch)]
    pub no_seed: bool,
    /// skip the VACUUM (ANALYZE) of the workload's tables and the TRUNCATE of pgbench_history
    /// before each run, as pgbench -n
    #[argh(switch, short = 'n')]
    pub no_vacuum: bool,
    /// SQL file run on a connection of its own before each run, after the vacuum and checkpoint
    /// (if it fails, pgstorm exits 3 before any load)
    #[argh(option)]
    pub pre_sql: Option<String>,
    /// SQL file run on a connection of its own after each run (if it fails: a warning, results kept)
    #[argh(option)]
    pub post_sql: Option<String>,
    /// label of the result folder (default: queries)
    #[argh(option, default = "String::from(\"queries\")")]
    pub label: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// run the load N times, one result folder each plus a set folder for compare (default 1)
    #[argh(option, default = "1", from_str_fn(args::repeat))]
    pub repeat: u32,
    /// wait until this UTC time (RFC 3339) before the load starts, so several machines start together
    #[argh(option)]
    pub start_at: Option<String>,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
    /// progress lines (stderr): text (default) or ndjson (one JSON object per line)
    #[argh(
        option,
        default = "ProgressFormat::Text",
        from_str_fn(output::progress_format)
    )]
    pub progress_format: ProgressFormat,
}

/// Hold hundreds of connections: ramp and hold, leaks, checkout timeouts, recovery, storms.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "connections")]
pub struct ConnectionsArgs {
    /// target as a URL or conninfo string (default: PG* variables, else a throwaway sandbox)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// pool size to ramp up to and hold (default 100)
    #[argh(option, default = "Count::new(100)", from_str_fn(args::count))]
    pub max_connections: Count,
    /// pool sizes of the ramp, e.g. 10,50,100,250,500 (default: that ladder up to --max-connections)
    #[argh(option, from_str_fn(args::counts))]
    pub steps: Option<Vec<Count>>,
    /// worker threads running the query mix over the pool (default: one per connection)
    #[argh(option, from_str_fn(args::count))]
    pub workers: Option<Count>,
    /// seconds to hold the last step (storm: the duration) (default 60)
    #[argh(
        option,
        short = 'T',
        default = "Secs::new(60)",
        from_str_fn(args::secs)
    )]
    pub time: Secs,
    /// time at each intermediate step once reached, e.g. 5s (default 5s)
    #[argh(option, default = "Span::secs(5)", from_str_fn(args::span))]
    pub step_hold: Span,
    /// new connections per second, e.g. 50/s, or unlimited (default 100/s)
    #[argh(
        option,
        default = "args::DEFAULT_CONNECT_RATE",
        from_str_fn(args::connect_rate)
    )]
    pub connect_rate: ConnectRate,
    /// pool checkout timeout, e.g. 30s (default 30s)
    #[argh(option, default = "Span::secs(30)", from_str_fn(args::span))]
    pub checkout_timeout: Span,
    /// a connection checked out longer than this is reported as a leak (default 30s)
    #[argh(option, default = "Span::secs(30)", from_str_fn(args::span))]
    pub leak_threshold: Span,
    /// on a checkout timeout: none (count it) or direct (also run on a direct connection)
    #[argh(option, default = "String::from(\"none\")")]
    pub fallback: String,
    /// storm mode: a new connection per operation, like pgbench -C (no pool)
    #[argh(switch)]
    pub storm: bool,
    /// concurrent clients in storm mode (default 10)
    #[argh(option, short = 'c', from_str_fn(args::count))]
    pub clients: Option<Count>,
    /// pause between a worker's operations, e.g. 10ms (default none)
    #[argh(option, from_str_fn(args::span))]
    pub think: Option<Span>,
    /// query mix (default ping = SELECT 1; also simple, join, aggregation, transaction, index, point)
    #[argh(option)]
    pub mix: Option<String>,
    /// protocol: prepared (default), extended or simple
    #[argh(option, short = 'M', default = "String::from(\"prepared\")")]
    pub protocol: String,
    /// statement_timeout of every connection, e.g. 5s (default 5s)
    #[argh(option, default = "Span::secs(5)", from_str_fn(args::span))]
    pub statement_timeout: Span,
    /// pool time-series interval, e.g. 1s (default 1s)
    #[argh(option, default = "Span::secs(1)", from_str_fn(args::span))]
    pub interval: Span,
    /// positive control: N workers keep their connection checked out until the end
    #[argh(option, default = "0", from_str_fn(args::leaks))]
    pub inject_leaks: u32,
    /// random seed of the workers (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// fail instead of seeding when the mix needs the dataset and it is missing
    #[argh(switch)]
    pub no_seed: bool,
    /// no progress lines
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// label of the result folder (default: connections)
    #[argh(option, default = "String::from(\"connections\")")]
    pub label: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
}

/// Check isolation invariants (bank, lost update, write skew, read skew, deadlock) at each level.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "isolation")]
pub struct IsolationArgs {
    /// target as a URL or conninfo string (default: PG* variables, else a throwaway sandbox)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// checks, comma-separated: bank, lost-update, write-skew, read-skew, deadlock (default all)
    #[argh(option, default = "String::from(\"all\")")]
    pub check: String,
    /// levels, comma-separated: read-committed, repeatable-read, serializable (default all)
    #[argh(option, default = "String::from(\"all\")")]
    pub level: String,
    /// concurrent workers per load phase: one thread and one connection each (default 20)
    #[argh(option, default = "Count::new(20)", from_str_fn(args::count))]
    pub workers: Count,
    /// transactions per worker in each load phase (default 50 unless -T is given)
    #[argh(option, from_str_fn(args::transactions))]
    pub transactions: Option<u64>,
    /// seconds of each (check, level) load phase instead of a transaction count
    #[argh(option, short = 'T', from_str_fn(args::secs))]
    pub time: Option<Secs>,
    /// attempts per transaction on 40001/40P01, 1 = no retry, as pgbench (default 10)
    #[argh(option, default = "10")]
    pub max_tries: u32,
    /// random seed of the workers (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// label of the result folder (default: isolation)
    #[argh(option, default = "String::from(\"isolation\")")]
    pub label: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
}

/// Create (or recreate) the pgstorm POS dataset in the target database.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "seed")]
pub struct SeedArgs {
    /// target as a URL or conninfo string (default: PG* variables)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// scale factor: 1 = 100 partners, 1,000 orders, ~3,000 order lines (default 1)
    #[argh(option, short = 's', default = "1", from_str_fn(args::scale))]
    pub scale: u32,
    /// generator seed: the same seed gives the same data (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// connections loading tables (one table each) and building indexes at once (default: CPUs, at most 8; the data is the same whatever N)
    #[argh(option, short = 'j', from_str_fn(args::count))]
    pub jobs: Option<Count>,
    /// create pgbench's tables instead (pgbench_accounts, _branches, _tellers, _history), like pgbench -i
    #[argh(switch, short = 'i')]
    pub pgbench: bool,
    /// pgbench -I: initialization steps of --pgbench, from d (drop), t (create), g (generate
    /// client-side), G (generate server-side), v (vacuum), p (primary keys), f (foreign keys)
    /// (default dtgvp)
    #[argh(option, short = 'I')]
    pub init_steps: Option<String>,
    /// pgbench -F: fillfactor of pgbench's tables, 10 to 100 (default 100)
    #[argh(option, short = 'F', from_str_fn(args::fillfactor))]
    pub fillfactor: Option<u32>,
    /// pgbench --partitions: partitions of pgbench_accounts (default 0: not partitioned)
    #[argh(option, from_str_fn(args::partitions))]
    pub partitions: Option<u32>,
    /// pgbench --partition-method: range (default) or hash
    #[argh(option)]
    pub partition_method: Option<String>,
    /// pgbench --foreign-keys: add foreign keys between pgbench's tables (step f)
    #[argh(switch)]
    pub foreign_keys: bool,
    /// pgbench --unlogged-tables: create pgbench's tables unlogged
    #[argh(switch)]
    pub unlogged_tables: bool,
    /// pgbench -n/--no-vacuum: skip the vacuum step
    #[argh(switch, short = 'n')]
    pub no_vacuum: bool,
    /// pgbench -q: no progress lines
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// Drop the pgstorm schema (only if pgstorm created it).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "clean")]
pub struct CleanArgs {
    /// target as a URL or conninfo string (default: PG* variables)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
}

/// Keep a sandbox PostgreSQL running for experiments: start, stop or status.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "sandbox")]
pub struct SandboxArgs {
    /// start, stop or status
    #[argh(positional)]
    pub action: String,
    /// max_connections of the sandbox (default 600)
    #[argh(option, default = "600", from_str_fn(args::server_connections))]
    pub max_connections: u32,
}

/// Print the JSON Schema of run.json.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "schema")]
pub struct SchemaArgs {}

/// Compare two result folders (or sets of repeated runs): deltas, verdicts, settings diff.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "compare")]
pub struct CompareArgs {
    /// baseline: a result folder, a set folder, or folders separated by commas
    #[argh(positional)]
    pub a: String,
    /// candidate: a result folder, a set folder, or folders separated by commas
    #[argh(positional)]
    pub b: String,
    /// output: table (default), markdown or json
    #[argh(option, default = "String::from(\"table\")")]
    pub format: String,
    /// exit 1 when a metric regresses significantly by more than this, e.g. 5%
    #[argh(option)]
    pub fail_on_regression: Option<String>,
    /// smallest change (in %) that can count as significant (default 1%)
    #[argh(option, default = "String::from(\"1%\")")]
    pub min_effect: String,
    /// significance level: false-discovery rate over all lines, e.g. 5% or 0.05 (default 5%)
    #[argh(option, default = "String::from(\"5%\")")]
    pub level: String,
    /// also write the comparison as a self-contained HTML page to this file
    #[argh(option)]
    pub html: Option<String>,
}

/// (Re)render report.html of a result folder.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "report")]
pub struct ReportArgs {
    /// the result folder
    #[argh(positional)]
    pub folder: String,
}

/// List archived runs from results/index.csv (reconciled with the folders first).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct ListArgs {
    /// only runs with this label
    #[argh(option)]
    pub label: Option<String>,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
}

/// A label's archived runs over time, each annotated with the settings changed since the previous
/// run: a terminal table and an HTML page.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "trend")]
pub struct TrendArgs {
    /// only runs with this label (default: every label, one series each)
    #[argh(option)]
    pub label: Option<String>,
    /// what to follow: tps (default), mean, p50, p95, p99, p99.9 or errors (error rate, %)
    #[argh(option, default = "String::from(\"tps\")")]
    pub metric: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// write the page here (default: trend.html in the results folder)
    #[argh(option)]
    pub html: Option<String>,
}

/// Merge runs made at the same time on several load machines into one result (histograms added).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "merge")]
pub struct MergeArgs {
    /// result folders, one per load machine
    #[argh(positional)]
    pub folders: Vec<String>,
    /// label of the merged result folder (default: merged)
    #[argh(option, default = "String::from(\"merged\")")]
    pub label: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
}

/// Find the pool size where throughput peaks: closed-loop loads at each concurrency level, the
/// Universal Scalability Law fitted to them, and a recommendation (optionally the highest
/// open-loop rate meeting a latency SLO).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "sweep")]
pub struct SweepArgs {
    /// target as a URL or conninfo string (default: PG* variables, else a throwaway sandbox)
    #[argh(option)]
    pub dsn: Option<String>,
    /// database server host or socket directory, as pgbench's -h (default: PGHOST)
    #[argh(option, short = 'h')]
    pub host: Option<String>,
    /// database server port, as pgbench's -p (default: PGPORT)
    #[argh(option, short = 'p')]
    pub port: Option<u16>,
    /// database user name, as pgbench's -U (default: PGUSER)
    #[argh(option, short = 'U')]
    pub username: Option<String>,
    /// database name, or a URL or conninfo string, as pgbench's trailing argument
    #[argh(positional)]
    pub dbname: Option<String>,
    /// fit the USL to the points of a CSV file instead of running a load (a header line, then
    /// columns N, throughput, optionally latency in ms); no server is contacted
    #[argh(option)]
    pub fit: Option<String>,
    /// concurrency levels, increasing, at least 3 (default 1,2,4,8,16,32,64,128)
    #[argh(
        option,
        short = 'c',
        default = "String::from(\"1,2,4,8,16,32,64,128\")"
    )]
    pub clients: String,
    /// measured seconds per level and per rate probe, after the warmup (default 10)
    #[argh(
        option,
        short = 'T',
        default = "Secs::new(10)",
        from_str_fn(args::secs)
    )]
    pub time: Secs,
    /// warmup seconds per level, excluded from its figures (default 1)
    #[argh(option, default = "Secs::new(1)", from_str_fn(args::secs_or_zero))]
    pub warmup: Secs,
    /// query mix, e.g. point=5,join=1 (types: simple, join, aggregation, transaction, index, point)
    #[argh(option)]
    pub mix: Option<String>,
    /// protocol: prepared (default), extended or simple
    #[argh(option, short = 'M', default = "String::from(\"prepared\")")]
    pub protocol: String,
    /// latency objective, e.g. 'p99<20ms' (percentiles p50..p99.99; units us, ms, s)
    #[argh(option)]
    pub slo: Option<String>,
    /// after the sweep, bisect the open-loop rate for the highest one meeting --slo
    #[argh(switch)]
    pub rate_search: bool,
    /// most open-loop probes of --rate-search (default 8)
    #[argh(option, default = "8", from_str_fn(args::probes))]
    pub rate_probes: u32,
    /// pool size of the rate probes (default: the recommended pool size)
    #[argh(option, from_str_fn(args::count))]
    pub rate_clients: Option<Count>,
    /// CPU cores of the server host, for the cores × 2 + spindles rule (default: this host's,
    /// when the server is local)
    #[argh(option, from_str_fn(args::cores))]
    pub server_cores: Option<u32>,
    /// effective spindles of the server's storage for that rule (default 0: data cached or SSD)
    #[argh(option, from_str_fn(args::spindles))]
    pub spindles: Option<u32>,
    /// bootstrap replicates for the interval of N* (default 1000)
    #[argh(option, default = "1000", from_str_fn(args::bootstrap))]
    pub bootstrap: usize,
    /// statement_timeout of every connection, e.g. 5s or 500ms (default 5s)
    #[argh(option, default = "Span::secs(5)", from_str_fn(args::span))]
    pub statement_timeout: Span,
    /// pool checkout timeout, e.g. 30s (default 30s)
    #[argh(option, default = "Span::secs(30)", from_str_fn(args::span))]
    pub checkout_timeout: Span,
    /// end the run as lost (exit 3) when no connection is open and reconnects keep failing
    /// this long, e.g. 5s (default 5s)
    #[argh(option, default = "Span::secs(5)", from_str_fn(args::span))]
    pub lost_grace: Span,
    /// print a progress line every N seconds
    #[argh(option, short = 'P', from_str_fn(args::secs_or_zero))]
    pub progress: Option<Secs>,
    /// do not pin worker threads to cores
    #[argh(switch)]
    pub no_pin: bool,
    /// random seed of the workers (default 1)
    #[argh(option, default = "1")]
    pub seed: u64,
    /// dataset scale: reseed the POS dataset when the seeded scale differs (default: the seeded one, else 1)
    #[argh(option, short = 's', from_str_fn(args::scale))]
    pub scale: Option<u32>,
    /// fail instead of seeding when the pgstorm dataset is missing or has another scale
    #[argh(switch)]
    pub no_seed: bool,
    /// skip the VACUUM (ANALYZE) of the workload's tables and the TRUNCATE of pgbench_history
    /// before each run, as pgbench -n
    #[argh(switch, short = 'n')]
    pub no_vacuum: bool,
    /// SQL file run on a connection of its own before each run, after the vacuum and checkpoint
    /// (if it fails, pgstorm exits 3 before any load)
    #[argh(option)]
    pub pre_sql: Option<String>,
    /// SQL file run on a connection of its own after each run (if it fails: a warning, results kept)
    #[argh(option)]
    pub post_sql: Option<String>,
    /// label of the result folder (default: sweep)
    #[argh(option, default = "String::from(\"sweep\")")]
    pub label: String,
    /// folder for result folders and index.csv (default: results)
    #[argh(option, default = "String::from(\"results\")")]
    pub results_dir: String,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
    /// progress lines (stderr): text (default) or ndjson (one JSON object per line)
    #[argh(
        option,
        default = "ProgressFormat::Text",
        from_str_fn(output::progress_format)
    )]
    pub progress_format: ProgressFormat,
}

/// Run side A and side B alternately, the order flipped every pair (A B, B A, A B, ...), each
/// applied by its SQL file before each of its runs, so drift over the study hits both alike;
/// archive every run and a set per side, and compare them pair by pair. The load of each run takes `pgstorm queries` options after `--`.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "study",
    example = "pgstorm study --a label=sync,sql=sync.sql --b label=async,sql=async.sql --pairs 5 -- -c 8 -T 30 -b tpcb-like"
)]
pub struct StudyArgs {
    /// side A (the baseline): label=NAME,sql=FILE; FILE runs on pgstorm's own connection before
    /// each A run (a file with ALTER SYSTEM is followed by pg_reload_conf, awaited)
    #[argh(option)]
    pub a: String,
    /// side B (the candidate): label=NAME,sql=FILE, as --a
    #[argh(option)]
    pub b: String,
    /// pairs of runs, A then B (default 3; 6 or more let compare use an exact test)
    #[argh(option, default = "3", from_str_fn(args::repeat))]
    pub pairs: u32,
    /// after --: the load and target of every run, as `pgstorm queries` takes them (not
    /// --label or --repeat)
    #[argh(positional)]
    pub queries: Vec<String>,
    /// result on stdout: text (default) or json (the result document, nothing else; messages go to stderr)
    #[argh(
        option,
        default = "OutputFormat::Text",
        from_str_fn(output::output_format)
    )]
    pub output_format: OutputFormat,
}
