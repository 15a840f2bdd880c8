//! `replay TRACE`: prints the Rust core's answer to every request of a trace, one JSON
//! line each (conformance/FORMAT.md). A malformed trace exits with status 2.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: replay TRACE");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    match aisoule_ratelimit_conformance::replay(&text) {
        Ok(lines) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in lines {
                if writeln!(out, "{line}").is_err() {
                    return ExitCode::from(1);
                }
            }
            if out.flush().is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{path}: {e}");
            ExitCode::from(2)
        }
    }
}
