//! The pgstorm binary: everything lives in the library; this only hands over the arguments and
//! exits with the code the library chose.

fn main() {
    // `args_os`: an argument that is not UTF-8 is the library's usage error, not a panic here.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(pgstorm::app::main(&args));
}
