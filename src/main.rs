//! The `execsentry` command line: run | replay | rules | audit-rules.

fn main() {
    eprintln!("execsentry: not built yet");
    std::process::exit(2);
}
