//! Any bytes as a bot's answer: read lean and whole they agree, and every check evaluates
//! without panicking.
#![no_main]

use std::sync::OnceLock;

use hookbench::engine::assertions::{evaluate, evaluate_brief};
use hookbench::engine::reply::{Body, Reply};
use hookbench::protocol::Version;
use hookbench::scenario::Scenario;
use libfuzzer_sys::fuzz_target;

fn checks() -> &'static Scenario {
    static S: OnceLock<Scenario> = OnceLock::new();
    S.get_or_init(|| {
        hookbench::scenario::parse_str(
            "steps:\n  - send: x\n    expect:\n      - status: 200\n      - schema: v2.response\n      - text: {nth: -1, contains: a}\n      - jsonpath: {path: \"$.data[*].val\", count: 1}\n      - messages: {min: 1}\n      - template: {type: button, buttons: 3}\n      - end_of_task: {reason: Fulfilled}\n      - poll: {converged: true, max_polls: 2}\n",
            std::path::Path::new("fuzz.yaml"),
            &|_| None,
        )
        .expect("valid checks")
    })
}

fuzz_target!(|data: &[u8]| {
    for version in [Version::V1, Version::V2] {
        let whole = Body::parse(data, version, true);
        let lean = Body::parse(data, version, false);
        assert_eq!(whole.is_ok(), lean.is_ok());
        let (Ok(whole), Ok(lean)) = (whole, lean) else {
            continue;
        };
        assert_eq!(whole.poll_id(), lean.poll_id());
        assert_eq!(whole.in_progress(), lean.in_progress());
        let mut a = Reply {
            status: Some(200),
            trees: true,
            ..Default::default()
        };
        let mut b = Reply {
            status: Some(200),
            ..Default::default()
        };
        a.push(whole, version);
        b.push(lean, version);
        a.finish(version);
        b.finish(version);
        assert_eq!(a.texts, b.texts);
        assert_eq!(a.message_count, b.message_count);
        assert_eq!(a.task_end, b.task_end);
        assert_eq!(a.form, b.form);
        for check in &checks().steps[0].expect {
            let full = evaluate(check, &a, &|_| None);
            assert_eq!(full.passed, evaluate_brief(check, &a, &|_| None).passed);
        }
    }
});
