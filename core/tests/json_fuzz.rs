//! The JSON config parser never panics: random text, and random edits of a valid config.
//! Every error names a field path or the whole config, and parses that succeed build a
//! usable limiter.
#![cfg(all(feature = "json", not(miri)))]

use aisoule_ratelimit::json::parse_config;
use aisoule_ratelimit::{Cell, Limiter, Now, Seed, Target};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const VALID: &str = r#"{"policies": {"standard": [{"algorithm": "window", "limit": 120, "period_ms": 60000}],
  "messaging": [{"algorithm": "window", "limit": 300, "period_ms": 60000},
                {"algorithm": "gcra", "limit": 5, "period_ms": 1000, "burst": 5}],
  "media": [{"algorithm": "window", "limit": 30, "period_ms": 60000}]},
  "routes": [{"prefix": "/v1/messages", "policy": "messaging"}, {"prefix": "/v1/media", "policy": "media"}],
  "default_policy": "standard", "capacity": 64}"#;

fn check(text: &str) {
    match parse_config(text) {
        Ok(parsed) => {
            let cells: Vec<Cell> = (0..16).map(|_| Cell::new()).collect();
            let l = Limiter::new(parsed.config, cells, Seed([1, 1]));
            let d = l
                .check(b"k", Target::Route("/v1/messages"), 1, Now::same(1 << 40))
                .unwrap();
            assert!(d.allowed);
        }
        Err(e) => {
            let s = e.to_string();
            assert!(s.contains(": "), "{s}");
            assert!(!s.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/json_fuzz.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,80}") {
        check(&text);
    }

    #[test]
    fn json_like_text_never_panics(text in "[{}\\[\\]\":,0-9a-z_ \\\\u.eE+-]{0,120}") {
        check(&text);
    }

    #[test]
    fn edited_configs_never_panic(edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[{}\\[\\]\":,0-9a-z\\\\ -]"), 1..6)) {
        let mut text: Vec<char> = VALID.chars().collect();
        for (at, op, c) in edits {
            let i = at.index(text.len() + 1);
            let c = c.chars().next().unwrap();
            match op {
                0 if i < text.len() => { text.remove(i); }
                1 => text.insert(i, c),
                _ if i < text.len() => text[i] = c,
                _ => {}
            }
        }
        check(&text.into_iter().collect::<String>());
    }
}

#[test]
fn the_valid_config_parses() {
    let parsed = parse_config(VALID).unwrap();
    assert_eq!(parsed.capacity, Some(64));
    check(VALID);
}
