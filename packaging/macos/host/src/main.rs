//! `execsentry-host`: the app that carries execsentry's Endpoint Security system extension and
//! asks macOS to activate, deactivate or describe it (SystemExtensions framework).
//!
//! It lives in `/Applications/ExecSentry.app/Contents/MacOS/` — macOS refuses activation
//! requests from anywhere else — and the package's postinstall runs `activate`. Off macOS it
//! only explains itself.

mod outcome;
#[cfg(target_os = "macos")]
mod request;

use outcome::{parse_args, EXIT_USAGE, USAGE};

fn main() {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("execsentry-host: {e}");
            }
            eprint!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { EXIT_USAGE });
        }
    };
    std::process::exit(run(&options));
}

#[cfg(target_os = "macos")]
fn run(options: &outcome::Options) -> i32 {
    request::run(options)
}

#[cfg(not(target_os = "macos"))]
fn run(options: &outcome::Options) -> i32 {
    eprintln!(
        "execsentry-host: {:?} of {} needs macOS. This program is the host app of execsentry's \
         Endpoint Security system extension and only does something inside \
         /Applications/ExecSentry.app on a Mac; on Linux run `execsentry run` (kernel audit).",
        options.command, options.extension_id
    );
    outcome::EXIT_NOT_MACOS
}
