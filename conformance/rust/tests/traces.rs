//! Every trace in `conformance/` through the core, compared with its expected answers;
//! malformed traces give a `TraceError` naming the line; the `replay` binary exits 2.

use std::path::{Path, PathBuf};
use std::process::Command;

use aisoule_ratelimit_conformance::{first_difference, parse_trace, replay, run, TraceError};
use serde_json::Value;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files of `dir` whose names end with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

/// The shared traces, then the project's own in `edge/` (JSON forms, default config).
fn traces() -> Vec<PathBuf> {
    let mut v = files(&conformance_dir(), ".trace.jsonl");
    v.extend(files(&conformance_dir().join("edge"), ".trace.jsonl"));
    v
}

/// The first difference between the core's answers to `trace` and `expected`, as
/// `file:line: field: got ..., expected ...`.
fn check_trace(name: &str, trace: &str, expected: &str) -> Result<usize, String> {
    let parsed = parse_trace(trace).map_err(|e| format!("{name}: {e}"))?;
    let answers = run(&parsed).map_err(|e| format!("{name}: {e}"))?;
    let want: Vec<Value> = expected
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{name} expected line {}: {e}", i + 1))
        })
        .collect();
    for (i, ((line, _), got)) in parsed.requests.iter().zip(&answers).enumerate() {
        let Some(w) = want.get(i) else {
            return Err(format!("{name}:{line}: an answer with no expected line"));
        };
        if let Some(d) = first_difference(got, w) {
            return Err(format!("{name}:{line} (expected line {}): {d}", i + 1));
        }
    }
    if want.len() != answers.len() {
        return Err(format!(
            "{name}: {} answers, {} expected",
            answers.len(),
            want.len()
        ));
    }
    Ok(answers.len())
}

#[test]
fn every_trace_gives_the_expected_answers() {
    let traces = traces();
    assert!(traces.len() >= 6, "found only {} traces", traces.len());
    let mut total = 0;
    for path in &traces {
        let expected_path = PathBuf::from(path.to_string_lossy().replace(".trace.jsonl", ".expected.jsonl"));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let trace = std::fs::read_to_string(path).unwrap();
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        match check_trace(&name, &trace, &expected) {
            Ok(n) => total += n,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(total > 100, "only {total} answers compared");
}

#[test]
fn a_changed_answer_is_reported_with_file_line_and_field() {
    let trace = std::fs::read_to_string(conformance_dir().join("01-burst-at-once.trace.jsonl")).unwrap();
    let expected =
        std::fs::read_to_string(conformance_dir().join("01-burst-at-once.expected.jsonl")).unwrap();
    let mut lines: Vec<String> = expected.lines().map(str::to_owned).collect();
    let mut v: Value = serde_json::from_str(&lines[1]).unwrap();
    let remaining = v["headers"]["X-RateLimit-Remaining"].as_str().unwrap().to_owned();
    v["headers"]["X-RateLimit-Remaining"] = Value::String("999".into());
    lines[1] = v.to_string();
    let err = check_trace("01.trace.jsonl", &trace, &lines.join("\n")).unwrap_err();
    assert_eq!(
        err,
        format!("01.trace.jsonl:2 (expected line 2): headers.X-RateLimit-Remaining: got \"{remaining}\", expected \"999\"")
    );
    // A missing answer and an extra field are differences too.
    let got: Value = serde_json::json!({"allowed": true, "status": 200});
    let want: Value = serde_json::json!({"allowed": true, "status": 200, "body": null});
    assert_eq!(
        first_difference(&got, &want).unwrap(),
        "body: missing, expected null"
    );
    assert_eq!(first_difference(&want, &got).unwrap(), "body: not expected");
    assert!(check_trace(
        "01",
        &trace,
        &expected.lines().take(3).collect::<Vec<_>>().join("\n")
    )
    .unwrap_err()
    .contains("an answer with no expected line"));
}

fn trace_error(text: &str) -> TraceError {
    replay(text).expect_err(text)
}

const REQ: &str = r#"{"t_ms": 1780423178274, "key": "k", "route": "/v1/messages"}"#;

fn with_config(config: &str) -> String {
    format!("{{\"config\": {config}}}\n{REQ}\n")
}

#[test]
fn malformed_traces_name_the_line() {
    let e = trace_error(&format!("{REQ}\n\n{{\"t_ms\": 1, \"key\": \"k\", \n"));
    assert_eq!(e.line, 3);
    assert!(e.message.starts_with("invalid JSON"), "{e}");
    let e = trace_error(&with_config(
        r#"{"policies": {"a": [{"algorithm": "leaky", "limit": 1, "period_ms": 1}]}, "default_policy": "a"}"#,
    ));
    assert_eq!(
        e.to_string(),
        "line 1: config.policies.a[0].algorithm: must be \"gcra\" or \"window\""
    );
    let e = trace_error(&with_config(
        r#"{"policies": {"a": [{"algorithm": "gcra", "limit": 0, "period_ms": 1}]}, "default_policy": "a"}"#,
    ));
    assert_eq!(
        e.to_string(),
        "line 1: config.policies.a[0].limit: must be from 1 to 1000000000"
    );
    let e = trace_error(&with_config(
        r#"{"policies": {"a": [{"algorithm": "window", "limit": 1, "period_ms": 0}]}, "default_policy": "a"}"#,
    ));
    assert_eq!(
        e.to_string(),
        "line 1: config.policies.a[0].period_ms: must be from 1 ms to 100 years"
    );
    let e = trace_error(&with_config(
        r#"{"routes": [{"prefix": "/x", "policy": "nope"}]}"#,
    ));
    assert_eq!(
        e.to_string(),
        "line 1: config.routes[0].policy: names a policy that is not defined"
    );
    let e = trace_error(&with_config(
        r#"{"policies": {"a": [{"algorithm": "window", "period_ms": 10}]}, "default_policy": "a"}"#,
    ));
    assert_eq!(e.to_string(), "line 1: config.policies.a[0].limit: is required");
    let e = trace_error(&format!("{REQ}\n{{\"t_ms\": 5, \"route\": \"/\"}}\n"));
    assert_eq!(e.to_string(), "line 2: missing field `key`");
    let e = trace_error(&format!("{REQ}\n{REQ}\n{{\"t_ms\": 5, \"key\": \"k\"}}\n"));
    assert_eq!(e.to_string(), "line 3: missing field `route`");
    let e = trace_error(&format!("{REQ}\n{}\n", with_config("{}").lines().next().unwrap()));
    assert_eq!(e.line, 2);
    let e = trace_error(r#"{"t_ms": -1, "key": "k", "route": "/"}"#);
    assert_eq!(e.line, 1);
    let e = trace_error(r#"{"t_ms": 1, "key": "k", "route": "/", "colour": 1}"#);
    assert_eq!(e.to_string(), "line 1: unknown field `colour`");
    let e = trace_error(r#"{"t_ms": 18446744073709551, "key": "k", "route": "/"}"#);
    assert_eq!(e.line, 1);
    assert!(e.message.contains("too large"), "{e}");
    let e = trace_error("[1]");
    assert_eq!(e.to_string(), "line 1: must be a JSON object");
}

/// Every trace in `malformed/` (`NAME.line-N.jsonl`, shared by every binding's replay) is
/// refused at line N.
#[test]
fn every_malformed_trace_is_refused_at_its_line() {
    let malformed = files(&conformance_dir().join("malformed"), ".jsonl");
    assert!(
        malformed.len() >= 20,
        "found only {} malformed traces",
        malformed.len()
    );
    for path in &malformed {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let line: usize = name
            .rsplit_once(".line-")
            .and_then(|(_, rest)| rest.strip_suffix(".jsonl"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: not NAME.line-N.jsonl"));
        let text = std::fs::read_to_string(path).unwrap();
        let e = match replay(&text) {
            Err(e) => e,
            Ok(answers) => panic!("{name}: answered {answers:?}"),
        };
        assert_eq!(e.line, line, "{name}: {e}");
    }
}

#[test]
fn invalid_cost_is_an_answer_not_an_error() {
    let out = replay(&format!("{REQ}\n{{\"t_ms\": 1780423178274, \"key\": \"k\", \"route\": \"/v1/messages\", \"cost\": 0}}\n{{\"t_ms\": 1780423178274, \"key\": \"k\", \"route\": \"/v1/messages\", \"cost\": 6}}\n{REQ}\n")).unwrap();
    assert_eq!(out[1], r#"{"error":"invalid_cost"}"#);
    assert_eq!(out[2], r#"{"error":"invalid_cost"}"#);
    let first: Value = serde_json::from_str(&out[0]).unwrap();
    let last: Value = serde_json::from_str(&out[3]).unwrap();
    assert_eq!(first["headers"]["X-RateLimit-Remaining"], "4");
    assert_eq!(last["headers"]["X-RateLimit-Remaining"], "3");
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("asrl-conformance-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn replay_binary_exits_2_with_a_one_line_error() {
    let bin = env!("CARGO_BIN_EXE_replay");
    let bad = temp_file(
        "bad.jsonl",
        &format!("{REQ}\n{{\"t_ms\": 1, \"key\": \"k\", \"route\": 5}}\n"),
    );
    let out = Command::new(bin).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing on stdout for a malformed trace");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.ends_with(": line 2: `route` must be a string\n"), "{err:?}");
    std::fs::remove_file(&bad).unwrap();
    let out = Command::new(bin).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin)
        .arg("/nonexistent/trace.jsonl")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8(out.stderr).unwrap().lines().count(), 1);
}

#[test]
fn replay_binary_prints_the_expected_answers() {
    let bin = env!("CARGO_BIN_EXE_replay");
    let dir = conformance_dir();
    let out = Command::new(bin)
        .arg(dir.join("05-costs.trace.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = std::fs::read_to_string(dir.join("05-costs.expected.jsonl")).unwrap();
    let got: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<Value> = expected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got, want);
}
