//! `summary [TRACE...]`: the project's main job until the gateway lands. Replays the
//! conformance traces through the core and prints, per trace, how many requests were
//! allowed, denied and refused as invalid, and whether every answer matches the
//! contract's expected file beside the trace. Exits 1 on any difference.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aisoule_ratelimit_conformance::{first_difference, parse_trace, run};
use serde_json::Value;

fn main() -> ExitCode {
    let mut traces: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if traces.is_empty() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("summary: cannot read {}", dir.display());
            return ExitCode::from(2);
        };
        traces = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".trace.jsonl"))
            .collect();
        traces.sort();
    }
    println!(
        "{:<38} {:>8} {:>8} {:>7} {:>8} {:>9}  result",
        "trace", "requests", "allowed", "denied", "invalid", "policies"
    );
    let mut failed = false;
    for path in &traces {
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let answers = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_trace(&text).map_err(|e| e.to_string()))
            .and_then(|trace| {
                let policies = if trace.config == aisoule_ratelimit::Config::documented() {
                    "default"
                } else {
                    "custom"
                };
                run(&trace).map(|a| (a, policies)).map_err(|e| e.to_string())
            });
        let (answers, policies) = match answers {
            Ok(a) => a,
            Err(e) => {
                println!("{name:<38} error: {e}");
                failed = true;
                continue;
            }
        };
        let count = |f: &dyn Fn(&Value) -> bool| answers.iter().filter(|a| f(a)).count();
        let allowed = count(&|a| a["allowed"] == Value::Bool(true));
        let denied = count(&|a| a["allowed"] == Value::Bool(false));
        let invalid = count(&|a| a.get("error").is_some());
        let expected_path = PathBuf::from(path.to_string_lossy().replace(".trace.jsonl", ".expected.jsonl"));
        let result = match std::fs::read_to_string(&expected_path) {
            Err(_) => "no expected file".to_owned(),
            Ok(text) => {
                let expected: Vec<Value> = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                let diff =
                    answers.iter().zip(&expected).enumerate().find_map(|(i, (g, w))| {
                        first_difference(g, w).map(|d| format!("answer {}: {d}", i + 1))
                    });
                match diff {
                    None if expected.len() == answers.len() => "matches the contract".to_owned(),
                    None => format!("{} answers, {} expected", answers.len(), expected.len()),
                    Some(d) => d,
                }
            }
        };
        failed |= result != "matches the contract";
        println!(
            "{name:<38} {:>8} {allowed:>8} {denied:>7} {invalid:>8} {policies:>9}  {result}",
            answers.len()
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
