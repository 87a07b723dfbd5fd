//! Resource id patterns (`gatehouse::policy::Pattern`) against the naive reference in
//! `gatehouse_fuzz::id_pattern`: both must agree on which patterns parse, on the capture names, on
//! whether an id matches and on what each capture takes.
//!
//! Input: the pattern, a newline, the id. Patterns are cut to 64 bytes and ids to 4 KiB, the sizes
//! a policy file and a request id plausibly have; within those, matching must stay fast (libFuzzer's
//! `-timeout` reports a slow input).

#![no_main]

use gatehouse::policy::Pattern;
use gatehouse_fuzz::id_pattern::RefPattern;
use libfuzzer_sys::fuzz_target;

const MAX_PATTERN: usize = 64;
const MAX_ID: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, id) = text.split_once('\n').unwrap_or((text, ""));
    if pattern.len() > MAX_PATTERN || id.len() > MAX_ID {
        return;
    }

    let expected = RefPattern::parse(pattern);
    let actual = Pattern::parse(pattern);
    let (expected, actual) = match (expected, actual) {
        (Ok(e), Ok(a)) => (e, a),
        (Err(_), Err(message)) => {
            // A parse error quotes the pattern, which is policy text, and must stay one line.
            assert!(!message.is_empty(), "empty parse error for {pattern:?}");
            return;
        }
        (Ok(_), Err(message)) => {
            panic!("pattern {pattern:?}: the reference parses it, gatehouse says: {message}")
        }
        (Err(why), Ok(_)) => {
            panic!("pattern {pattern:?}: gatehouse parses it, the reference refuses it: {why}")
        }
    };

    assert_eq!(actual.source(), pattern);
    assert_eq!(actual.to_string(), pattern);
    assert_eq!(
        actual.capture_names(),
        expected.names(),
        "capture names of {pattern:?}"
    );

    let want = expected.captures(id);
    let got = actual.captures(id).map(|c| {
        c.as_slice()
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
    });
    assert_eq!(got, want, "pattern {pattern:?} on id {id:?}");
    assert_eq!(actual.is_match(id), want.is_some());
    if let Some(captures) = actual.captures(id) {
        for (i, value) in captures.as_slice().iter().enumerate() {
            assert_eq!(captures.get(i), Some(*value));
        }
        assert_eq!(captures.get(captures.as_slice().len()), None);
    }
});
