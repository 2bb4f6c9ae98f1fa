//! Validation: table rows of scenario text and the exact messages it must produce.

use std::path::Path;

use hookbench::scenario::parse_str;

fn errors(text: &str) -> Vec<String> {
    let env = |n: &str| (n == "SET_VAR").then(|| "value".to_string());
    match parse_str(text, Path::new("t.yaml"), &env) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .map(|d| {
                let hint = d
                    .hint
                    .as_ref()
                    .map(|h| format!(" [{h}]"))
                    .unwrap_or_default();
                format!(
                    "{}:{}:{} {}: {}{hint}",
                    d.file.display(),
                    d.pos.line,
                    d.pos.column,
                    d.path,
                    d.message
                )
            })
            .collect(),
    }
}

#[test]
fn table_of_invalid_scenarios() {
    let rows: &[(&str, &[&str])] = &[
        ("steps:\n  - send: hi\n    expcet: []\n", &["t.yaml:3:5 steps[0].expcet: unknown key `expcet` [did you mean `expect`?]"]),
        ("nmae: x\nsteps: [{send: hi}]\n", &["t.yaml:1:1 nmae: unknown key `nmae` [did you mean `name`?]"]),
        ("steps: [{send: hi}]\nload: { users: 2, max_connections: 0 }\n", &["t.yaml:2:36 load.max_connections: max_connections must be at least 1"]),
        ("steps:\n  - send: hi\n    expect:\n      - txt: hi\n", &["t.yaml:4:9 steps[0].expect[0].txt: unknown check `txt` [did you mean `text`?]"]),
        ("steps:\n  - event: ON_CONECT\n", &["t.yaml:2:12 steps[0].event: unknown event `ON_CONECT` (ON_CONNECT or SESSION_CLOSURE) [did you mean `ON_CONNECT`?]"]),
        (
            "vars: {amount: '1'}\nsteps:\n  - send: \"{{amout}}\"\n",
            &["t.yaml:3:11 steps[0].send: variable `amout` is not defined [did you mean `amount`?]"],
        ),
        (
            "steps:\n  - send: \"{{later}}\"\n  - send: x\n    capture: {later: \"$.data[0].val\"}\n",
            &["t.yaml:2:11 steps[0].send: variable `later` is not defined [define it under `vars:`, as a `data:` column, or `capture:` it in an earlier step]"],
        ),
        (
            "target: {url: \"${MISSING_URL}\"}\nsteps: [{send: hi}]\n",
            &["t.yaml:1:15 target.url: environment variable `MISSING_URL` is not set [export MISSING_URL=… before running]"],
        ),
        (
            "steps:\n  - send: hi\n    expect:\n      - latency: 15\n",
            &["t.yaml:4:18 steps[0].expect[0].latency: invalid duration `15`: missing unit (expected a number with a unit: `250ms`, `15s`, `2m`, `1h`)"],
        ),
        ("target: {mode: asinc}\nsteps: [{send: hi}]\n", &["t.yaml:1:16 target.mode: mode must be sync or async, not `asinc`"]),
        ("steps:\n  - send: hi\n    event: ON_CONNECT\n", &["t.yaml:2:5 steps[0]: a step does one thing; found send and event"]),
        ("name: x\n", &["t.yaml:1:1 steps: a scenario needs `steps:`"]),
        (
            "auth: {client_id: cs-1, algorithm: RS256, private_key_file: no-such.pem}\nsteps: [{send: hi}]\n",
            &["t.yaml:1:61 auth.private_key_file: no such file: no-such.pem"],
        ),
        (
            "steps:\n  - send: hi\n    expect:\n      - status: 99999999999\n      - messages: 1e30\n",
            &[
                "t.yaml:4:17 steps[0].expect[0].status: status must be at most 599",
                "t.yaml:5:19 steps[0].expect[1].messages: expected a whole number ≥ 0, found 1000000000000000000000000000000",
            ],
        ),
        (
            "steps: [{send: hi}]\nload: { users: 0, arrivals: poisson }\n",
            &[
                "t.yaml:2:29 load.arrivals: `arrivals` applies to an arrival rate (rate, capacity), not to closed users",
                "t.yaml:2:16 load.users: users must be at least 1",
            ],
        ),
        (
            "steps: [{send: hi}]\nload: { rate: inf, duration: 0s }\n",
            &[
                "t.yaml:2:15 load.rate: `inf` is not a rate above zero (write 20/s, 600/m or 20)",
            ],
        ),
        (
            "data:\n  - {a: 1, b: x}\n  - {a: 2, c: y}\nsteps: [{send: \"{{a}}\"}]\n",
            &[
                "t.yaml:3:12 data[1].c: `c` is not a column of the first row (a, b)",
                "t.yaml:3:5 data[1]: row 2 has no `b`",
            ],
        ),
        (
            "steps: [{send: hi}]\nthresholds:\n  - errors.rate < 5x\n  - turn.latncy.p99 < 3s\n",
            &[
                "t.yaml:3:5 thresholds[0]: `5x` is not a ratio (write 0.1% or 0.001)",
                "t.yaml:4:5 thresholds[1]: unknown metric `turn.latncy` [did you mean `turn.latency`?]",
            ],
        ),
        (
            "target: {url: \"http://h/chatbot/hooks/st-1\", version: v2}\nsteps: [{send: hi}]\n",
            &["t.yaml:1:55 target.version: the URL is a v1 URL but version says v2"],
        ),
        ("auth: {client_id: c}\nsteps: [{send: hi}]\n", &["t.yaml:1:7 auth.client_secret: HS256 needs `client_secret`"]),
    ];
    for (text, expected) in rows {
        assert_eq!(errors(text), *expected, "for:\n{text}");
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let text =
        "nmae: x\ntarget: {mode: asinc}\nsteps:\n  - send: hi\n    expcet: []\n  - event: NOPE\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn env_and_defaults_resolve() {
    let ok = "target: {url: \"http://${HOST:-127.0.0.1:9}/chatbot/v2/webhook/st-1\"}\nauth: {client_id: \"${SET_VAR}\", client_secret: s}\nsteps: [{send: hi}]\n";
    assert_eq!(errors(ok), Vec::<String>::new());
}

#[test]
fn example_scenarios_are_valid() {
    let files =
        hookbench::cli::test::expand(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")])
            .unwrap();
    assert!(files.len() >= 7);
    assert!(files
        .iter()
        .all(|f| !f.to_string_lossy().ends_with(".bot.yaml")
            && !f.to_string_lossy().ends_with(".steps.yaml")));
    hookbench::cli::test::load_all(&files).unwrap();
}

#[test]
fn yaml_1_1_boolean_words_stay_text() {
    let s = parse_str(
        "steps:\n  - send: no\n    custom_data: { n: no, y: on, off: Yes }\n",
        Path::new("t.yaml"),
        &|_| None,
    )
    .unwrap();
    assert_eq!(
        s.steps[0].custom_data,
        Some(serde_json::json!({"n": "no", "y": "on", "off": "Yes"}))
    );
    assert_eq!(&*s.steps[0].label, "send no");
    // Only `true`/`false` are booleans, so `yes` where a boolean belongs is an error.
    let e = errors("steps:\n  - send: hi\n    new_session: yes\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("t.yaml:3:18 steps[0].new_session:"),
        "{e:?}"
    );
}

#[test]
fn load_connection_settings() {
    let s = parse_str(
        "steps: [{send: hi}]\nload: { users: 2, max_connections: 50 }\n",
        Path::new("t.yaml"),
        &|_| None,
    )
    .unwrap();
    let l = s.load.unwrap();
    assert_eq!(l.max_connections, Some(50));
    assert!(!l.connection_per_user);
}

#[test]
fn inline_data_rows_become_the_scenario_rows() {
    let s = parse_str(
        "data:\n  - {amount: 250, account: savings}\n  - {account: checking, amount: 75}\nsteps: [{send: \"{{amount}} to {{account}}\"}]\n",
        Path::new("t.yaml"),
        &|_| None,
    )
    .unwrap();
    let d = s.data.unwrap();
    assert_eq!(d.columns, ["amount", "account"]);
    assert_eq!(d.rows, [["250", "savings"], ["75", "checking"]]);
}

/// Files held in memory: the scenario layer reads only through what it is given.
struct InMemory(Vec<(&'static str, &'static str)>);

impl hookbench::common::files::Files for InMemory {
    fn text(&self, path: &Path, _max: u64) -> std::io::Result<String> {
        self.0
            .iter()
            .find(|(p, _)| Path::new(p) == path)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn is_file(&self, path: &Path) -> bool {
        self.0.iter().any(|(p, _)| Path::new(p) == path)
    }
}

#[test]
fn a_scenario_reads_the_files_it_names_through_what_it_is_given() {
    let files = InMemory(vec![
        (
            "/mem/s.yaml",
            "name: m\ndata: rows.csv\nsteps:\n  - include: greet.steps.yaml\n  - send: \"{{amount}}\"\n",
        ),
        ("/mem/rows.csv", "amount\n250\n75\n"),
        ("/mem/greet.steps.yaml", "- event: ON_CONNECT\n"),
    ]);
    let s =
        hookbench::scenario::load_from(&files, Path::new("/mem/s.yaml"), &|_| None, &[]).unwrap();
    assert_eq!(s.steps.len(), 2);
    assert_eq!(s.data.unwrap().rows.len(), 2);
    let missing = InMemory(vec![(
        "/mem/s.yaml",
        "name: m\ndata: rows.csv\nsteps: [{send: hi}]\n",
    )]);
    assert!(
        hookbench::scenario::load_from(&missing, Path::new("/mem/s.yaml"), &|_| None, &[]).is_err()
    );
}
