//! Prometheus' own PromQL test scripts (`promql/promqltest/testdata/*.test`, kept in
//! `../shared/fixtures/promql` beside the clone) run through our engine.
//!
//! Every eval must pass, or be listed in `promqltest-exceptions.txt` with a reason
//! (`file.test:LINE reason`, `#` comments), or need native histograms (counted apart).
//! The test fails on an eval that neither passes nor is listed, on a listed eval that
//! passes (the list stays honest) and on a listed line that is no eval. It prints the
//! pass count per file (`cargo test --test promqltest -- --nocapture`).
//!
//! `PROMQLTEST_WRITE_EXCEPTIONS=1` rewrites the list from the current failures: entries
//! still failing keep their reason, new ones get the first line of their failure.
//! `PROMQLTEST_VERBOSE=1` prints every eval that did not pass, unsupported ones included.

#[path = "promqltest/compare.rs"]
mod compare;
#[path = "promqltest/run.rs"]
mod run;
#[path = "promqltest/script.rs"]
mod script;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use run::{EvalReport, Outcome, run_script};
use script::parse_script;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/promql");
const EXCEPTIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/promqltest-exceptions.txt"
);

/// `file.test:LINE` to its reason.
type Exceptions = BTreeMap<(String, usize), String>;

fn parse_exceptions(text: &str) -> Result<Exceptions, String> {
    let mut out = Exceptions::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (place, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let parsed = place
            .rsplit_once(':')
            .and_then(|(file, n)| Some((file.to_string(), n.parse::<usize>().ok()?)));
        let Some(key) = parsed else {
            return Err(format!(
                "exceptions line {}: expected file.test:LINE reason",
                i + 1
            ));
        };
        if out.insert(key, reason.trim().to_string()).is_some() {
            return Err(format!("exceptions line {}: {place} listed twice", i + 1));
        }
    }
    Ok(out)
}

/// What one file gave.
struct FileResult {
    name: String,
    reports: Vec<EvalReport>,
    parse_error: Option<String>,
}

fn run_file(path: &Path) -> FileResult {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    match parse_script(&text) {
        Ok(commands) => FileResult {
            name,
            reports: run_script(&commands),
            parse_error: None,
        },
        Err(e) => FileResult {
            name,
            reports: Vec::new(),
            parse_error: Some(e.to_string()),
        },
    }
}

fn fixture_files() -> Vec<PathBuf> {
    let dir = Path::new(FIXTURES);
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; Prometheus' test scripts are expected in ../shared/fixtures/promql beside the clone",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    files
}

/// The run's findings: the summary lines and the problems that fail the test.
#[derive(Default)]
struct Findings {
    summary: String,
    problems: Vec<String>,
    /// Failing evals, for rewriting the exceptions file: key to first line of the failure.
    failing: Exceptions,
}

fn assess(results: &[FileResult], exceptions: &Exceptions) -> Findings {
    let mut f = Findings::default();
    let mut used = std::collections::BTreeSet::new();
    let (mut all_pass, mut all_total) = (0, 0);
    for r in results {
        if let Some(e) = &r.parse_error {
            f.problems.push(format!("{}: does not parse: {e}", r.name));
            continue;
        }
        let (mut pass, mut listed, mut unsupported) = (0, 0, 0);
        for rep in &r.reports {
            let key = (r.name.clone(), rep.line);
            let is_listed = exceptions.contains_key(&key);
            if is_listed {
                used.insert(key.clone());
            }
            let place = format!("{}:{}", r.name, rep.line);
            match &rep.outcome {
                Outcome::Pass if is_listed => {
                    pass += 1;
                    f.problems.push(format!(
                        "{place}: listed in the exceptions but passes now: {}",
                        rep.expr
                    ));
                }
                Outcome::Pass => pass += 1,
                Outcome::Unsupported(_) => unsupported += 1,
                Outcome::Fail(why) => {
                    let first = why.lines().next().unwrap_or_default().to_string();
                    f.failing.insert(key, first);
                    if is_listed {
                        listed += 1;
                    } else {
                        f.problems.push(format!("{place}: {}\n    {why}", rep.expr));
                    }
                }
            }
        }
        let total = r.reports.len();
        all_pass += pass;
        all_total += total;
        let _ = writeln!(
            f.summary,
            "{}: {pass}/{total} passed, {listed} listed, {unsupported} need native histograms",
            r.name
        );
    }
    let _ = writeln!(f.summary, "all: {all_pass}/{all_total} passed");
    for key in exceptions.keys().filter(|k| !used.contains(*k)) {
        f.problems.push(format!(
            "{}:{}: listed in the exceptions but is no eval",
            key.0, key.1
        ));
    }
    f
}

fn write_exceptions(failing: &Exceptions, old: &Exceptions) -> std::io::Result<()> {
    let mut text = String::from(
        "# Evals of ../shared/fixtures/promql/*.test our engine knowingly does not pass.\n\
         # One per line: file.test:LINE reason. The promqltest runner fails on an eval that\n\
         # neither passes nor is listed here, and on a listed one that passes.\n",
    );
    for ((file, line), first) in failing {
        let reason = old
            .get(&(file.clone(), *line))
            .filter(|r| !r.is_empty())
            .unwrap_or(first);
        let _ = writeln!(text, "{file}:{line} {reason}");
    }
    std::fs::write(EXCEPTIONS, text)
}

/// Every eval that did not plainly pass, for `PROMQLTEST_VERBOSE=1`.
fn print_outcomes(results: &[FileResult]) {
    for r in results {
        for rep in &r.reports {
            let (kind, why) = match &rep.outcome {
                Outcome::Pass => continue,
                Outcome::Fail(why) => ("FAIL", why.as_str()),
                Outcome::Unsupported(why) => ("UNSUPPORTED", why.as_str()),
            };
            let first = why.lines().next().unwrap_or_default();
            println!("{kind} {}:{} {} -- {first}", r.name, rep.line, rep.expr);
        }
    }
}

#[test]
fn prometheus_promql_scripts() {
    let exceptions_text = std::fs::read_to_string(EXCEPTIONS).unwrap_or_default();
    let exceptions = parse_exceptions(&exceptions_text).expect("exceptions file");
    let results: Vec<FileResult> = fixture_files().iter().map(|p| run_file(p)).collect();
    assert!(!results.is_empty(), "no .test file in {FIXTURES}");
    let findings = assess(&results, &exceptions);
    println!("{}", findings.summary);
    if std::env::var_os("PROMQLTEST_VERBOSE").is_some() {
        print_outcomes(&results);
    }
    if std::env::var_os("PROMQLTEST_WRITE_EXCEPTIONS").is_some() {
        write_exceptions(&findings.failing, &exceptions).expect("writing the exceptions file");
        println!("wrote {} entries to {EXCEPTIONS}", findings.failing.len());
        return;
    }
    assert!(
        findings.problems.is_empty(),
        "{} problem(s):\n{}\n\n{}",
        findings.problems.len(),
        findings.problems.join("\n"),
        findings.summary
    );
}

mod parser_tests {
    use super::compare::{almost_equal, matches, without_position};
    use super::script::*;
    use proptest::prelude::*;

    fn values(line: &str) -> Vec<Option<f64>> {
        parse_series_line(line).expect("parses").values
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(
            values("m 1+2x3"),
            vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
        );
        assert_eq!(
            values("m 1-2x3"),
            vec![Some(1.0), Some(-1.0), Some(-3.0), Some(-5.0)]
        );
        assert_eq!(values("m -1+1x1"), vec![Some(-1.0), Some(0.0)]);
        assert_eq!(values("m 5x2"), vec![Some(5.0); 3]);
        assert_eq!(values("m _ _x2 3"), vec![None, None, None, Some(3.0)]);
        assert_eq!(
            values("m 1e3 -Inf +Inf"),
            vec![Some(1000.0), Some(f64::NEG_INFINITY), Some(f64::INFINITY)]
        );
        let v = values("m NaN stale");
        assert!(v[0].is_some_and(|x| x.is_nan() && !sysward_server::query::is_stale(x)));
        assert!(v[1].is_some_and(sysward_server::query::is_stale));
        // Repeated addition, as Prometheus: 0.1 added three times.
        assert_eq!(values("m 0+0.1x3")[3], Some(0.1 + 0.1 + 0.1));
        assert!(parse_series_line("m 1+x3").is_err());
        assert!(parse_series_line("m 1+2").is_err());
        assert!(parse_series_line("m abc").is_err());
    }

    #[test]
    fn series_labels() {
        let s = parse_series_line(r#"http_requests{job="api", path="/a\"b"} 1"#).unwrap();
        assert_eq!(
            s.labels,
            vec![
                ("__name__".into(), "http_requests".into()),
                ("job".into(), "api".into()),
                ("path".into(), "/a\"b".into()),
            ]
        );
        let s = parse_series_line(r#"{__name__="m", a='x',} 2"#).unwrap();
        assert_eq!(s.labels.len(), 2);
        let s = parse_series_line(r#"{"my.metric", "a.b"="c"} 2"#).unwrap();
        assert_eq!(s.labels[0], ("__name__".into(), "my.metric".into()));
        assert_eq!(s.labels[1], ("a.b".into(), "c".into()));
        assert!(parse_series_line(r#"m{a="b" 1"#).is_err());
        assert!(parse_series_line(r#"m{a=b} 1"#).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("10s"), Ok(10_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("5m59s"), Ok(359_000));
        assert_eq!(parse_duration("1ms"), Ok(1));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(parse_duration("-5m"), Ok(-300_000));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("1m1h").is_err());
        assert!(parse_duration("1s1s").is_err());
        assert!(parse_duration("99999999999999999999y").is_err());
    }

    fn one_eval(script: &str) -> Eval {
        let commands = parse_script(script).expect("parses");
        match commands.last() {
            Some(Command::Eval(e)) => (**e).clone(),
            other => panic!("not an eval: {other:?}"),
        }
    }

    #[test]
    fn eval_blocks() {
        let e = one_eval(
            "load 1m\n  m{a=\"1\"} 1+1x5\n\n# comment\neval instant at 2m sum(m)\n  expect no_warn\n  expect info msg: PromQL info: x (1:5)\n  {} 3\n",
        );
        assert_eq!(e.line, 5);
        assert_eq!(e.expr, "sum(m)");
        assert_eq!(e.kind, EvalKind::Instant { at: 120_000 });
        assert!(e.no_warn && !e.fail);
        assert_eq!(
            e.infos,
            vec![Matcher::Message("PromQL info: x (1:5)".into())]
        );
        match &e.expected {
            Expected::Series(list) => {
                assert_eq!(list.len(), 1);
                assert_eq!(list[0].0, 1, "expect lines do not count as positions");
                assert_eq!(list[0].1.values, vec![Some(3.0)]);
            }
            other => panic!("{other:?}"),
        }

        let e = one_eval("eval range from 0 to 10m step 5m rate(m[5m])\n  {a=\"1\"} 1 _ 3\n");
        assert_eq!(
            e.kind,
            EvalKind::Range {
                start: 0,
                end: 600_000,
                step: 300_000
            }
        );

        let e = one_eval("eval instant at 0 1 + 1\n  2\n");
        assert_eq!(e.expected, Expected::Scalar(2.0));

        let e = one_eval("eval instant at 0 foo(\n  expect fail regex: unexpected.*\n");
        assert!(e.fail);
        assert!(matches!(e.fail_matchers.as_slice(), [Matcher::Regex(_)]));

        let e = one_eval("eval_fail instant at 0 x\n  expected_fail_message boom\n");
        assert_eq!(e.fail_matchers, vec![Matcher::Message("boom".into())]);

        let e = one_eval("eval instant at 0 \"a\"\n  expect string `Foo`\n");
        assert_eq!(e.string.as_deref(), Some("Foo"));

        let e = one_eval(
            "eval instant at 1m m[1m]\n  expect range vector from 0 to 1m step 30s\n  m 1 2 3\n",
        );
        assert_eq!(e.range_vector, Some((0, 60_000, 30_000)));

        let e = one_eval("eval_ordered instant at 0 sort(m)\n  m{a=\"2\"} 1\n  m{a=\"1\"} 2\n");
        assert!(e.ordered);

        let e = one_eval("eval instant at 0 h\n  {} {{count:1}}\n");
        assert!(e.expects_histogram);
    }

    #[test]
    fn malformed_scripts_are_errors() {
        assert!(parse_script("bogus 1").is_err());
        assert!(parse_script("load x\n m 1").is_err());
        assert!(parse_script("eval instant at 1m m\n  m 1 2\n").is_err());
        assert!(parse_script("eval instant at 0 m\n  expect warn\n  expect no_warn\n").is_err());
        assert!(parse_script("eval instant at 0 m\n  expect fail\n  expect fail\n").is_err());
        assert!(parse_script("eval range from 1m to 0 step 1m m\n").is_err());
        let err = parse_script("clear\n\nload 1m\n  m{ 1\n").unwrap_err();
        assert_eq!(err.line, 4);
    }

    #[test]
    fn loads_skip_native_histograms() {
        let commands = parse_script("load 5m\n  h {{schema:0 count:1}}\n  m 1\n").unwrap();
        let Some(Command::Load(load)) = commands.first() else {
            panic!("{commands:?}")
        };
        assert_eq!(load.interval_ms, 300_000);
        assert_eq!(
            load.histogram_series,
            vec![vec![("__name__".to_string(), "h".to_string())]]
        );
        assert_eq!(load.series.len(), 1);
    }

    fn outcomes(script: &str) -> Vec<super::Outcome> {
        let commands = parse_script(script).expect("parses");
        super::run_script(&commands)
            .into_iter()
            .map(|r| r.outcome)
            .collect()
    }

    #[test]
    fn the_runner_tells_right_from_wrong() {
        let load = "load 1m\n  m{a=\"1\"} 1+1x10\n  m{a=\"2\"} 5x10\n  h {{schema:0 count:1}}\n\n";
        let cases = [
            (
                "eval instant at 2m m\n  m{a=\"1\"} 3\n  m{a=\"2\"} 5\n",
                true,
            ),
            (
                "eval instant at 2m m\n  m{a=\"1\"} 3.0000001\n  m{a=\"2\"} 5\n",
                true,
            ),
            (
                "eval instant at 2m m\n  m{a=\"1\"} 3.1\n  m{a=\"2\"} 5\n",
                false,
            ),
            ("eval instant at 2m m\n  m{a=\"1\"} 3\n", false),
            (
                "eval instant at 2m m\n  {a=\"1\"} 3\n  {a=\"2\"} 5\n",
                false,
            ),
            (
                "eval range from 0 to 2m step 1m m{a=\"1\"}\n  m{a=\"1\"} 1 2 3\n",
                true,
            ),
            (
                "eval range from 0 to 2m step 1m m{a=\"1\"}\n  m{a=\"1\"} 1 _ 3\n",
                false,
            ),
            ("eval instant at 0 1 + 1\n  2\n", true),
            ("eval instant at 0 1 + 1\n  {} 2\n", false),
            ("eval instant at 0 m +\n  expect fail\n", true),
            ("eval instant at 0 m\n  expect fail\n", false),
            ("eval instant at 0 \"x\"\n  expect string \"x\"\n", true),
            ("eval instant at 0 \"x\"\n  expect string \"y\"\n", false),
        ];
        for (eval, passes) in cases {
            let got = outcomes(&format!("{load}{eval}"));
            assert_eq!(got.len(), 1, "{eval}");
            assert_eq!(
                got[0] == super::Outcome::Pass,
                passes,
                "{eval}: {:?}",
                got[0]
            );
        }
        let got = outcomes(&format!("{load}eval instant at 0 h\n  h {{{{count:1}}}}\n"));
        assert!(matches!(got[0], super::Outcome::Unsupported(_)), "{got:?}");
    }

    #[test]
    fn comparison_rules() {
        assert!(almost_equal(1.0, 1.0 + 1e-9));
        assert!(!almost_equal(1.0, 1.0001));
        assert!(almost_equal(f64::NAN, sysward_server::query::stale_nan()));
        assert!(!almost_equal(0.0, 1e-300));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY));
        assert_eq!(without_position("PromQL info: x (1:8)"), "PromQL info: x");
        let re = Matcher::Regex(regex::Regex::new(r"got NaN \([0-9]+:[0-9]+\)").unwrap());
        assert!(matches(&re, "PromQL warning: got NaN"));
        assert!(matches(&re, "PromQL warning: got NaN (2:3)"));
        assert!(!matches(&re, "PromQL warning: got 1"));
        let msg = Matcher::Message("PromQL info: x (1:21)".into());
        assert!(matches(&msg, "PromQL info: x"));
        assert!(!matches(&msg, "PromQL info: y"));
    }

    #[test]
    fn exceptions_file_format() {
        let e = super::parse_exceptions("# c\n\nfunctions.test:12 needs x\nat.test:3\n").unwrap();
        assert_eq!(
            e.get(&("functions.test".into(), 12)).map(String::as_str),
            Some("needs x")
        );
        assert_eq!(e.get(&("at.test".into(), 3)).map(String::as_str), Some(""));
        assert!(super::parse_exceptions("nonsense here\n").is_err());
        assert!(super::parse_exceptions("a.test:1 x\na.test:1 y\n").is_err());
    }

    proptest! {
        #[test]
        fn the_script_parser_never_panics(text in "(?s).{0,300}") {
            let _ = parse_script(&text);
        }

        #[test]
        fn script_like_text_never_panics(
            lines in prop::collection::vec(
                prop_oneof![
                    Just("load 1m".to_string()),
                    Just("clear".to_string()),
                    Just(String::new()),
                    "eval (instant at|range from) [0-9a-z ]{0,12} [a-z(){}\\[\\]0-9]{0,10}",
                    "  (expect )?[a-z_]{0,8}( (msg|regex):.{0,6})?",
                    "  [a-z]{0,4}(\\{[a-z]{0,2}=\"[a-z\\\\]{0,3}\"\\}?)? [-+_0-9xeInfa. ]{0,16}",
                ],
                0..12,
            )
        ) {
            let _ = parse_script(&lines.join("\n"));
        }

        #[test]
        fn series_values_never_panic(item in "[-+_0-9xeEInfNaxs.]{0,12}") {
            let _ = sysward_server::rules::unittest::series::parse_item(&item);
        }
    }
}
