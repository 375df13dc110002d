//! The pgstorm binary: everything lives in the library; this only hands over the arguments and
//! exits with the code the library chose.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(pgstorm::app::main(&args));
}
