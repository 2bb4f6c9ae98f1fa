//! No argument list reaches a panic: arbitrary flags and values for `run`, `token` and
//! `compare` either fail to parse (clap's exit 2) or go through validation to an exit code.

use clap::Parser;
use hookbench::cli::{run, token, Cli, Command, Exit};
use proptest::prelude::*;

/// Values that break parsers: signs, non-finite numbers, overflow, units, empty text, emoji.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "1",
            "-1",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e12",
            "1e-12",
            "1e308",
            "99999999999",
            "18446744073709551616",
            "2s",
            "0s",
            "1ms",
            "-5s",
            "1h",
            "20/s",
            "600/m",
            "0/s",
            "nan/s",
            "10%",
            "-10%",
            "nan%",
            "inf%",
            "",
            " ",
            "abc",
            "😀",
            "${UNSET}",
            "${A:-${B:-${C}}}",
            "0.05",
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "[ -~]{0,12}",
    ]
}

fn flags(names: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec((prop::sample::select(names), value()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .flat_map(|(f, v)| [f.to_string(), v])
            .collect()
    })
}

const RUN_FLAGS: &[&str] = &[
    "--users",
    "--rate",
    "--max-concurrency",
    "--duration",
    "--iterations",
    "--grace",
    "--max-connections",
    "--shard",
    "--shards",
    "--start-at",
    "--run-id",
    "--target",
    "--client-id",
    "--client-secret",
];

const TOKEN_FLAGS: &[&str] = &[
    "--user",
    "--client-id",
    "--client-secret",
    "--alg",
    "--app-claim",
    "--expires-in",
    "--private-key-file",
];

const COMPARE_FLAGS: &[&str] = &[
    "--latency-tolerance",
    "--error-tolerance",
    "--throughput-tolerance",
];

fn parse(args: Vec<String>) -> Option<Command> {
    Cli::try_parse_from(args).ok().map(|c| c.command)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn run_arguments_validate_or_are_refused(
        extra in flags(RUN_FLAGS),
        poisson in any::<bool>(),
        no_gate in any::<bool>(),
    ) {
        let mut args: Vec<String> = ["hookbench", "run", "scenarios/quickstart.yaml"]
            .map(String::from)
            .to_vec();
        args.extend(extra);
        if poisson { args.push("--poisson".into()); }
        if no_gate { args.push("--no-default-gate".into()); }
        if let Some(Command::Run(a)) = parse(args) {
            // Validation only: a plan that passes is bounded (rate, users, duration).
            if let Ok((_, load)) = run::prepare(&a) {
                if let hookbench::scenario::LoadModel::Open { rate, .. } = load.model {
                    prop_assert!(rate.is_finite() && rate > 0.0 && rate <= 1e6);
                }
                if let hookbench::scenario::LoadModel::Closed { users, .. } = load.model {
                    prop_assert!(users <= 1_000_000);
                }
                prop_assert!(load.duration.is_none_or(|d| !d.is_zero()));
                prop_assert!(load.iterations.is_none_or(|n| n > 0));
            }
        }
    }

    #[test]
    fn token_arguments_sign_or_are_refused(extra in flags(TOKEN_FLAGS)) {
        let mut args: Vec<String> = ["hookbench", "token"].map(String::from).to_vec();
        args.extend(extra);
        if let Some(Command::Token(a)) = parse(args) {
            let code = token::run(a);
            prop_assert!(matches!(code, Exit::Ok | Exit::Usage));
        }
    }

    #[test]
    fn compare_tolerances_are_percentages_of_at_least_zero(extra in flags(COMPARE_FLAGS)) {
        let mut args: Vec<String> = ["hookbench", "compare", "no-such-a.json", "no-such-b.json"]
            .map(String::from)
            .to_vec();
        args.extend(extra);
        if let Some(Command::Compare(a)) = parse(args) {
            for t in [a.latency_tolerance, a.error_tolerance, a.throughput_tolerance] {
                prop_assert!(t.is_finite() && t >= 0.0, "{t}");
            }
            prop_assert_eq!(run::compare(a), Exit::Usage);
        }
    }
}

/// Every flag of every command appears in the README's command table, and every `load:`
/// flag in the option table of docs/scenario.md: the documentation follows the parser.
#[test]
fn the_documented_options_are_the_parsed_ones() {
    use clap::CommandFactory;
    let readme = include_str!("../README.md");
    let scenario_doc = include_str!("../docs/scenario.md");
    let cli = Cli::command();
    // Commands with subcommands (`certify list`, `certify channel`) have a row each.
    let mut commands: Vec<(String, &clap::Command)> = Vec::new();
    for sub in cli.get_subcommands() {
        if sub.has_subcommands() {
            for nested in sub.get_subcommands() {
                commands.push((format!("{} {}", sub.get_name(), nested.get_name()), nested));
            }
        } else {
            commands.push((sub.get_name().to_string(), sub));
        }
    }
    for (name, sub) in commands {
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `hookbench {name} ")))
            .unwrap_or_else(|| panic!("no README row for `hookbench {name}`"));
        for arg in sub.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if ["help", "version", "log"].contains(&long) {
                continue;
            }
            assert!(
                row.contains(&format!("--{long}")),
                "README's `hookbench {name}` row lacks --{long}"
            );
            if sub.get_name() == "run"
                && ![
                    "target",
                    "client-id",
                    "client-secret",
                    "out",
                    "quiet",
                    "no-color",
                    "http2",
                    "metrics-listen",
                    "results-stdout",
                ]
                .contains(&long)
            {
                assert!(
                    scenario_doc.contains(&format!("`--{long}`")),
                    "docs/scenario.md does not name --{long}"
                );
            }
        }
    }
}
