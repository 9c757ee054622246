use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sample(labels: &[(&str, &str)], value: f64) -> QuerySample {
    QuerySample {
        labels: map(labels),
        value,
    }
}

/// Answers a fixed set of queries, like Prometheus' test expander.
struct FakeQuery;

impl TemplateQuery for FakeQuery {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        let metric = |inst| [("__name__", "metric"), ("instance", inst)];
        Ok(match expr {
            "up" => vec![
                sample(&[("__name__", "up"), ("instance", "a")], 1.0),
                sample(&[("__name__", "up"), ("instance", "b")], 0.0),
            ],
            "1.5" => vec![sample(&[], 1.5)],
            "metric{instance='a'}" => vec![sample(&metric("a"), 11.0)],
            "metric{__value__='a'}" => {
                vec![sample(&[("__name__", "metric"), ("__value__", "a")], 11.0)]
            }
            "metric" => vec![sample(&metric("b"), 21.0), sample(&metric("a"), 11.0)],
            "missing" => vec![],
            other => return Err(format!("unexpected query {other:?}")),
        })
    }
}

fn render_value(
    text: &str,
    value: f64,
    query: &dyn TemplateQuery,
) -> Result<String, TemplateError> {
    let labels = map(&[
        ("__name__", "up"),
        ("instance", "foo.example.com:9100"),
        ("job", "node"),
    ]);
    let external = map(&[("cluster", "prod")]);
    let data = TemplateData {
        labels: &labels,
        value,
        external_labels: &external,
        external_url: "http://testhost:9090/path/prefix",
        time_ms: 1_435_065_584_128,
    };
    Template::parse(text)?.render(&data, query)
}

fn render(text: &str) -> Result<String, TemplateError> {
    render_value(text, 0.1234, &FakeQuery)
}

/// Runs every case and reports all mismatches at once.
fn check(cases: &[(&str, &str)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| match render(text) {
            Ok(got) if got == *want => None,
            Ok(got) => Some(format!("{text:?}\n   got {got:?}\n  want {want:?}")),
            Err(e) => Some(format!("{text:?}\n  error {e}\n  want {want:?}")),
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn exec_error(text: &str) -> String {
    match render(text) {
        Err(TemplateError::Exec { message }) => message,
        other => panic!("{text:?}: expected an exec error, got {other:?}"),
    }
}

fn parse_error(text: &str) -> (usize, usize, String) {
    match Template::parse(text) {
        Err(TemplateError::Parse {
            line,
            column,
            message,
        }) => (line, column, message),
        other => panic!("{text:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn prometheus_expansion_table() {
    check(&[
        ("plain text", "plain text"),
        ("{{ 1 }}", "1"),
        ("{{ \"<b>\" }}", "<b>"),
        ("{{ \"<b>\" | safeHtml }}", "<b>"),
        ("{{ query \"1.5\" | first | value }}", "1.5"),
        ("{{ query \"metric{instance='a'}\" | first | value }}", "11"),
        (
            "{{ query \"metric{instance='a'}\" | first | label \"instance\" }}",
            "a",
        ),
        (
            "{{ query \"metric{__value__='a'}\" | first | strvalue }}",
            "a",
        ),
        (
            "{{ query \"metric{instance='a'}\" | first | label \"foo\" }}",
            "",
        ),
        (
            "{{ $x := query \"metric\" | first }}{{ $x.Labels.foo }}",
            "",
        ),
        (
            "{{ range query \"metric\" | sortByLabel \"instance\" }}{{.Labels.instance}}:{{.Value}}: {{end}}",
            "a:11: b:21: ",
        ),
        ("{{ reReplaceAll \"(a)b\" \"x$1\" \"ab\" }}", "xa"),
        ("{{ \"aa bb CC\" | title }}", "Aa Bb CC"),
        ("{{ \"aa bb CC\" | toUpper }}", "AA BB CC"),
        ("{{ \"aA bB CC\" | toLower }}", "aa bb cc"),
        (
            "{{ match \"a+\" \"aa\" }} {{ match \"a+\" \"b\" }}",
            "true false",
        ),
        ("{{ graphLink \"up\" }}", "/graph?g0.expr=up&g0.tab=0"),
        ("{{ tableLink \"up\" }}", "/graph?g0.expr=up&g0.tab=1"),
        ("{{ pathPrefix }}", "/path/prefix"),
        ("{{ externalURL }}", "http://testhost:9090/path/prefix"),
        (
            "{{ printf \"%0.2f\" (parseDuration \"1h2m10ms\") }}",
            "3720.01",
        ),
        (
            "{{ with args 1 \"2\" }}{{ .arg0 }} {{ .arg1 }}{{ end }}",
            "1 2",
        ),
        ("{{ (args 1).arg7 }}", "<no value>"),
    ]);
}

#[test]
fn strip_port_and_domain() {
    let cases = [
        ("foo.example.com", "foo.example.com", "foo"),
        ("foo.example.com:12345", "foo.example.com", "foo:12345"),
        ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
        ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
        (
            "[2001:0DB8::1]:12345",
            "2001:0DB8::1",
            "[2001:0DB8::1]:12345",
        ),
        (
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
        ),
    ];
    for (input, port, domain) in cases {
        assert_eq!(
            render(&format!("{{{{ {input:?} | stripPort }}}}")).unwrap(),
            port
        );
        assert_eq!(
            render(&format!("{{{{ {input:?} | stripDomain }}}}")).unwrap(),
            domain
        );
    }
}

#[test]
fn humanize_functions_match_prometheus() {
    check(&[
        (
            "{{ humanize 0.0 }}:{{ humanize 1.0 }}:{{ humanize 1234567.0 }}:{{ humanize .12 }}",
            "0:1:1.235M:120m",
        ),
        (
            "{{ humanize \"0.0\" }}:{{ humanize \"1.0\" }}:{{ humanize \"1234567.0\" }}:{{ humanize \".12\" }}",
            "0:1:1.235M:120m",
        ),
        (
            "{{ humanize 0 }}:{{ humanize -1 }}:{{ humanize 1 }}:{{ humanize 1234567 }}:{{ humanize 9223372036854775807 }}",
            "0:-1:1:1.235M:9.223E",
        ),
        ("{{ humanize \"18446744073709551615\" }}", "18.45E"),
        ("{{ humanize 0.00123 }}", "1.23m"),
        (
            "{{ humanize1024 0.0 }}:{{ humanize1024 1.0 }}:{{ humanize1024 1048576.0 }}:{{ humanize1024 .12 }}",
            "0:1:1Mi:0.12",
        ),
        (
            "{{ humanize1024 \"1048576.0\" }}:{{ humanize1024 \".12\" }}",
            "1Mi:0.12",
        ),
        (
            "{{ humanize1024 0 }}:{{ humanize1024 -1 }}:{{ humanize1024 1 }}:{{ humanize1024 1234567 }}:{{ humanize1024 9223372036854775807 }}",
            "0:-1:1:1.177Mi:8Ei",
        ),
        ("{{ humanize1024 \"18446744073709551615\" }}", "16Ei"),
        (
            "{{ range $d := args 0.0 1.0 60.0 3600.0 86400.0 90000.0 -183845.0 899.99 }}{{ humanizeDuration $d }}:{{ end }}",
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
        ),
        (
            "{{ humanizeDuration \"0\" }}:{{ humanizeDuration \"60\" }}:{{ humanizeDuration \"86400\" }}",
            "0s:1m 0s:1d 0h 0m 0s",
        ),
        (
            "{{ humanizeDuration .1 }}:{{ humanizeDuration .0001 }}:{{ humanizeDuration .12345 }}:{{ humanizeDuration 60.1 }}:{{ humanizeDuration 60.5 }}:{{ humanizeDuration 1.2345 }}:{{ humanizeDuration 12.345 }}",
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s",
        ),
        (
            "{{ humanizeDuration \".12345\" }}:{{ humanizeDuration \"12.345\" }}",
            "123.5ms:12.35s",
        ),
        (
            "{{ humanizeDuration 0 }}:{{ humanizeDuration -1 }}:{{ humanizeDuration 1 }}:{{ humanizeDuration 1234567 }}",
            "0s:-1s:1s:14d 6h 56m 7s",
        ),
        (
            "{{ humanizeDuration 3725 }} {{ humanizeDuration 0.0123 }}",
            "1h 2m 5s 12.3ms",
        ),
        (
            "{{ range $x := args \"+Inf\" \"-Inf\" \"NaN\" }}{{ humanize $x }}:{{ humanize1024 $x }}:{{ humanizeDuration $x }}:{{ humanizeTimestamp $x }}:{{ end }}",
            "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:",
        ),
        (
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
            "-22.22%:0%:12.35%:123.5%",
        ),
        (
            "{{ \"-0.22222\" | humanizePercentage }}:{{ \"0.0\" | humanizePercentage }}:{{ \"0.1234567\" | humanizePercentage }}:{{ \"1.23456\" | humanizePercentage }}",
            "-22.22%:0%:12.35%:123.5%",
        ),
        (
            "{{ range $x := args 0 -1 1 1234567 9223372036854775807 }}{{ humanizePercentage $x }}:{{ end }}",
            "0%:-100%:100%:1.235e+08%:9.223e+20%:",
        ),
        (
            "{{ humanizePercentage \"18446744073709551615\" }}",
            "1.845e+21%",
        ),
        ("{{ humanizePercentage 0.1234 }}", "12.34%"),
        (
            "{{ range $x := args 0 -1 1 1234567 9223372036 }}{{ humanizeTimestamp $x }}:{{ end }}",
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:\
             1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
        ),
        (
            "{{ 1435065584.128 | humanizeTimestamp }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        (
            "{{ \"1435065584.128\" | humanizeTimestamp }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        (
            "{{ 1435065584.128 | toTime }}",
            "2015-06-23 13:19:44.128 +0000 UTC",
        ),
        ("{{ (\"1435065584.128\" | toTime).Unix }}", "1435065584"),
        (
            "{{ toDuration 3725.5 }} {{ toDuration 0.0015 }} {{ (toDuration 90).Minutes }}",
            "1h2m5.5s 1.5ms 1.5",
        ),
        ("{{ humanizeDuration (toDuration 3725) }}", "1h 2m 5s"),
        (
            "{{ parseDuration \"1y2w3d4h5m6s7ms\" }} {{ parseDuration \"0\" }}",
            "3.3019506007e+07 0",
        ),
        ("{{ now }}", "1.435065584128e+09"),
    ]);
}

#[test]
fn humanize_errors_name_the_function() {
    let e = exec_error("{{ humanize \"one\" }}");
    assert_eq!(
        e,
        "template: 1:4: executing at <humanize \"one\">: error calling humanize: \
         strconv.ParseFloat: parsing \"one\": invalid syntax"
    );
    let e = exec_error("{{ \"one\" | humanizePercentage }}");
    assert!(
        e.starts_with(
            "template: 1:12: executing at <humanizePercentage>: error calling humanizePercentage"
        ),
        "{e}"
    );
    let e = exec_error("{{ toUpper $value }}");
    assert_eq!(
        e,
        "template: 1:4: executing at <toUpper $value>: wrong type for value; expected string; got float64"
    );
    let e = exec_error("{{ humanize true }}");
    assert!(
        e.ends_with("error calling humanize: can't convert bool to float"),
        "{e}"
    );
    let e = exec_error("{{ humanizeTimestamp -9223372036854775808 }}");
    assert!(
        e.ends_with("-9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"),
        "{e}"
    );
    let e = exec_error("{{ parseDuration \"5x\" }}");
    assert!(e.ends_with("unknown unit \"x\" in duration \"5x\""), "{e}");
    let e = exec_error("{{ parseDuration \"1s1m\" }}");
    assert!(e.ends_with("not a valid duration string: \"1s1m\""), "{e}");
}

#[test]
fn text_trimming_and_comments() {
    check(&[
        ("a  {{- 1 -}}  b", "a1b"),
        ("a {{- /* c */ -}} b", "ab"),
        ("x {{/* comment */}} y", "x  y"),
        ("{{/* multi\nline */}}ok", "ok"),
        ("{{ 1 }}\n   {{- 2 }}", "12"),
        ("{{ 1 -}}\n\t x", "1x"),
        ("{{- 3 }}", "3"),
        ("{{-3}}", "-3"),
        ("{{ 3 -}}", "3"),
        ("{{3  -}} x", "3x"),
        ("a\n{{- if true }}\n  yes\n{{- end }}\n", "a\n  yes\n"),
    ]);
}

#[test]
fn conditionals() {
    check(&[
        ("{{ if true }}y{{ else }}n{{ end }}", "y"),
        ("{{ if 0 }}y{{ else }}n{{ end }}", "n"),
        ("{{ if 0.0 }}y{{ else }}n{{ end }}", "n"),
        ("{{ if \"\" }}y{{ end }}", ""),
        ("{{ if $labels.nope }}y{{ else }}n{{ end }}", "n"),
        ("{{ if $labels }}y{{ end }}", "y"),
        ("{{ if query \"missing\" }}y{{ else }}n{{ end }}", "n"),
        (
            "{{ if gt $value 1.0 }}big{{ else if gt $value 0.1 }}mid{{ else }}small{{ end }}",
            "mid",
        ),
        (
            "{{ if eq $labels.job \"a\" }}A{{ else if eq $labels.job \"b\" }}B{{ else if eq $labels.job \"node\" }}N{{ else }}?{{ end }}",
            "N",
        ),
        ("{{ if false }}a{{ else if false }}b{{ end }}", ""),
        ("{{ with $labels.job }}job={{ . }}{{ end }}", "job=node"),
        ("{{ with $labels.nope }}x{{ else }}none{{ end }}", "none"),
        (
            "{{ with $labels }}{{ with .job }}{{ . }}{{ end }}/{{ .instance }}{{ end }}",
            "node/foo.example.com:9100",
        ),
        (
            "{{ with $labels.nope }}a{{ else with $labels.job }}b={{ . }}{{ end }}",
            "b=node",
        ),
        ("{{ with $x := $labels.job }}{{ $x }}{{ end }}", "node"),
        ("{{ if $x := 0 }}{{ else }}{{ $x }}{{ end }}", "0"),
    ]);
}

#[test]
fn ranges() {
    check(&[
        (
            "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
            "__name__=up;instance=foo.example.com:9100;job=node;",
        ),
        (
            "{{ range $labels }}{{ . }},{{ end }}",
            "up,foo.example.com:9100,node,",
        ),
        (
            "{{ range $i, $s := query \"metric\" }}{{ $i }}:{{ $s.Labels.instance }} {{ end }}",
            "0:b 1:a ",
        ),
        (
            "{{ range $s := query \"up\" }}{{ $s.Value }}{{ end }}",
            "10",
        ),
        (
            "{{ range query \"missing\" }}x{{ else }}empty{{ end }}",
            "empty",
        ),
        (
            "{{ range $i, $v := query \"up\" }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ $v.Labels.instance }}{{ end }}",
            "a",
        ),
        (
            "{{ range 5 }}{{ if eq . 2 }}{{ continue }}{{ end }}{{ . }}{{ end }}",
            "0134",
        ),
        ("{{ range $i := 3 }}{{ $i }}{{ end }}", "012"),
        ("{{ range 0 }}x{{ else }}none{{ end }}", "none"),
        (
            "{{ $n := 0 }}{{ range query \"up\" }}{{ $n = . }}{{ end }}{{ $n.Labels.instance }}",
            "b",
        ),
        (
            "{{ $last := \"\" }}{{ range $k, $v := $labels }}{{ $last = $k }}{{ end }}{{ $last }}",
            "job",
        ),
        (
            "{{ range $x := args 1 2 }}{{ range $y := args 3 4 }}{{ $x }}{{ $y }} {{ end }}{{ end }}",
            "13 14 23 24 ",
        ),
        ("{{ range (args \"a\" \"b\") }}{{ . }}{{ end }}", "ab"),
        (
            "{{ range $i := 3 }}{{ range query \"missing\" }}{{ else }}{{ if eq $i 1 }}{{ break }}{{ end }}{{ end }}{{ $i }}{{ end }}",
            "0",
        ),
    ]);
}

#[test]
fn variables_and_fields() {
    check(&[
        ("{{ $x := 1 }}{{ $x }}", "1"),
        ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
        ("{{ $.Labels.job }}", "node"),
        (
            "{{ .Labels.job }} {{ .Value }} {{ .ExternalURL }} {{ .ExternalLabels.cluster }}",
            "node 0.1234 http://testhost:9090/path/prefix prod",
        ),
        ("{{ $labels.nope }}|{{ .Labels.nope }}", "|"),
        ("{{ $externalURL }}", "http://testhost:9090/path/prefix"),
        (
            "{{ $labels }}",
            "map[__name__:up instance:foo.example.com:9100 job:node]",
        ),
        ("{{ (query \"up\" | first).Labels.instance }}", "a"),
        ("{{ (index (query \"up\") 1).Labels.instance }}", "b"),
        ("{{ query \"1.5\" }}", "[{map[] 1.5}]"),
        ("{{ query \"1.5\" | first }}", "&{map[] 1.5}"),
        (
            "{{ 'a' }} {{ 0x1F }} {{ 1e3 }} {{ 1.0 }} {{ -7 }} {{ 0o17 }} {{ 1_000 }}",
            "97 31 1000 1 -7 15 1000",
        ),
        (
            "{{ \"tab\\there\\u00e9\\x41\" }} {{ `raw\\n` }}",
            "tab\there\u{e9}A raw\\n",
        ),
        ("{{ (1) }} {{ (print (print 2)) }}", "1 2"),
        (
            "{{ . | printf \"%T\" }}",
            "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }",
        ),
    ]);
}

#[test]
fn builtin_functions() {
    check(&[
        (
            "{{ and 1 0 2 }}|{{ and 1 2 }}|{{ or 0 \"\" \"x\" }}|{{ or 0 \"\" }}",
            "0|2|x|",
        ),
        ("{{ not 0 }} {{ not \"a\" }}", "true false"),
        ("{{ 0 | and 1 }} {{ 1 | or 0 }}", "0 1"),
        (
            "{{ len $labels }} {{ len \"héllo\" }} {{ len (query \"up\") }}",
            "3 6 2",
        ),
        (
            "{{ index $labels \"job\" }}|{{ index $labels \"nope\" }}|{{ index \"abc\" 1 }}",
            "node||98",
        ),
        ("{{ index (args (args 1 2)) \"arg0\" \"arg1\" }}", "2"),
        (
            "{{ slice \"abcdef\" 1 3 }} {{ slice \"abcdef\" 2 }} {{ len (slice (query \"up\") 1) }}",
            "bc cdef 1",
        ),
        (
            "{{ eq 1 2 3 1 }} {{ eq \"a\" \"b\" \"c\" }} {{ eq 1 1.0 }} {{ eq true true }}",
            "true false true true",
        ),
        (
            "{{ ne 1 2 }} {{ lt 1 1.5 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.0 2 }}",
            "true true true true false",
        ),
        ("{{ if gt $value 0.1 }}firing{{ end }}", "firing"),
        ("{{ print 1 2 \"a\" \"b\" 3 }}", "1 2ab3"),
        (
            "{{ print nil }}|{{ print }}|{{ print 1.5 true }}",
            "<nil>||1.5 true",
        ),
        ("{{ println 1 \"a\" }}", "1 a\n"),
        (
            "{{ html \"<a href='x'>&\\\"\" }}",
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;",
        ),
        ("{{ html $labels.nope 1 }}", "1"),
        ("{{ js \"it's <b>\\n\" }}", "it\\'s \\u003Cb\\u003E\\u000A"),
        ("{{ urlquery \"a b&c=d/é\" }}", "a+b%26c%3Dd%2F%C3%A9"),
        ("{{ \"x\" | printf \"%s-%s\" \"a\" }}", "a-x"),
    ]);
}

#[test]
fn printf_verbs() {
    check(&[
        ("{{ printf \"%s|%v|%d\" \"a\" 1.5 42 }}", "a|1.5|42"),
        (
            "{{ printf \"%5d|%-5d|%05d|%x|%X|%o|%b|%#x|%c\" 42 42 42 255 255 8 5 255 72 }}",
            "   42|42   |00042|ff|FF|10|101|0xff|H",
        ),
        (
            "{{ printf \"%f|%.2f|%8.3f|%-8.1f|\" 3.14159 3.14159 3.14159 3.14159 }}",
            "3.141590|3.14|   3.142|3.1     |",
        ),
        (
            "{{ printf \"%6.2f|%06.2f|%-6.2f|%+.1f|% .1f\" -1.5 -1.5 -1.5 2.0 2.0 }}",
            " -1.50|-01.50|-1.50 |+2.0| 2.0",
        ),
        (
            "{{ printf \"%e|%E|%.2e|%e\" 123456.789 0.000123 1.0 0.0 }}",
            "1.234568e+05|1.230000E-04|1.00e+00|0.000000e+00",
        ),
        (
            "{{ printf \"%g|%g|%g|%.3g|%G\" 0.000012345 1e21 100.0 3.14159 1e-7 }}",
            "1.2345e-05|1e+21|100|3.14|1E-07",
        ),
        (
            "{{ printf \"%q|%x|%X|% x|%q\" \"a\\\"b\\n\" \"hi\" \"hi\" \"hi\" 65 }}",
            "\"a\\\"b\\n\"|6869|6869|68 69|'A'",
        ),
        (
            "{{ printf \"%t|%v|%%|%5.1f%%\" true false 99.5 }}",
            "true|false|%| 99.5%",
        ),
        (
            "{{ printf \"%.3s|%5s|%-5s|\" \"abcdef\" \"ab\" \"ab\" }}",
            "abc|   ab|ab   |",
        ),
        ("{{ printf \"%+d|% d|%+d\" 5 5 -5 }}", "+5| 5|-5"),
        ("{{ printf \"%[2]s-%[1]s\" \"a\" \"b\" }}", "b-a"),
        (
            "{{ printf \"%*d|%-*d|%.*f\" 4 7 3 7 2 3.14159 }}",
            "   7|7  |3.14",
        ),
        (
            "{{ printf \"%T %T %T %T\" 1 1.5 \"a\" $labels }}",
            "int float64 string map[string]string",
        ),
        (
            "{{ printf \"%v\" $value }} {{ printf \"%.2f\" $value }}",
            "0.1234 0.12",
        ),
        (
            "{{ printf \"%s\" $labels }}",
            "map[__name__:up instance:foo.example.com:9100 job:node]",
        ),
        ("{{ printf \"%d\" 1.5 }}", "%!d(float64=1.5)"),
        ("{{ printf \"%f\" 5 }}", "%!f(int=5)"),
        ("{{ printf \"%s\" 5 }}", "%!s(int=5)"),
        ("{{ printf \"%d %d\" 1 }}", "1 %!d(MISSING)"),
        ("{{ printf \"%d\" 1 2 }}", "1%!(EXTRA int=2)"),
        ("{{ printf \"%d %s\" nil nil }}", "%!d(<nil>) %!s(<nil>)"),
        ("{{ printf \"%z\" 1 }}", "%!z(int=1)"),
        ("{{ printf \"abc%\" }}", "abc%!(NOVERB)"),
        (
            "{{ printf \"%v %v\" (1435065584.128 | toTime) (toDuration 1.5) }}",
            "2015-06-23 13:19:44.128 +0000 UTC 1.5s",
        ),
        (
            "{{ printf \"%08.3f|%+08d|%x\" 3.14159 42 -255 }}",
            "0003.142|+0000042|-ff",
        ),
        ("{{ printf \"%5t|%-6v|\" true nil }}", " true|<nil> |"),
    ]);
}

#[test]
fn float_rendering_is_gos() {
    let cases: [(f64, &str); 16] = [
        (5.0, "5"),
        (0.5, "0.5"),
        (0.1, "0.1"),
        (100.0, "100"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1000000.5, "1.0000005e+06"),
        (123456789.0, "1.23456789e+08"),
        (1e21, "1e+21"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (-2.5, "-2.5"),
        (-0.0, "-0"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
    ];
    for (v, want) in cases {
        assert_eq!(
            render_value("{{ $value }}", v, &NoQuery).unwrap(),
            want,
            "value {v}"
        );
        assert_eq!(
            render_value("{{ .Value }}", v, &NoQuery).unwrap(),
            want,
            "value {v}"
        );
        assert_eq!(
            render_value("{{ print $value }}", v, &NoQuery).unwrap(),
            want,
            "value {v}"
        );
    }
    assert_eq!(
        render_value(
            "{{ printf \"%v|%.1f|%g\" $value $value $value }}",
            2.5,
            &NoQuery
        )
        .unwrap(),
        "2.5|2.5|2.5"
    );
    // Ties round to even on the exact binary value, like Go.
    assert_eq!(
        render_value(
            "{{ printf \"%.2f %.0f %.0f\" 0.125 2.5 3.5 }}",
            0.0,
            &NoQuery
        )
        .unwrap(),
        "0.12 2 4"
    );
}

#[test]
fn prometheus_rule_examples() {
    check(&[
        (
            "Instance {{ $labels.instance }} down",
            "Instance foo.example.com:9100 down",
        ),
        (
            "{{ $labels.instance }} of job {{ $labels.job }} has been down for more than 5 minutes.",
            "foo.example.com:9100 of job node has been down for more than 5 minutes.",
        ),
        ("{{ $value | humanizePercentage }}", "12.34%"),
        (
            "{{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }}",
            "1",
        ),
        ("{{ printf \"%.2f\" $value }}", "0.12"),
        ("{{ $externalLabels.cluster }}", "prod"),
        (
            "{{ $labels.instance | stripPort }} is {{ humanize $value }} loaded",
            "foo.example.com is 123.4m loaded",
        ),
    ]);
}

#[test]
fn parse_errors_give_line_and_column() {
    assert_eq!(
        parse_error("{{ humanise $value }}"),
        (1, 4, "function \"humanise\" not defined".to_string())
    );
    assert_eq!(
        parse_error("line one\n  {{ $value | humanise }}"),
        (2, 15, "function \"humanise\" not defined".to_string())
    );
    assert_eq!(
        parse_error("{{ $label.foo }}"),
        (1, 4, "undefined variable \"$label\"".to_string())
    );
    assert_eq!(parse_error("é {{"), (1, 3, "unclosed action".to_string()));
    let e = Template::parse("{{ nope }}").unwrap_err().to_string();
    assert_eq!(e, "template: 1:4: function \"nope\" not defined");
}

#[test]
fn parse_errors_table() {
    let cases = [
        ("{{", "unclosed action"),
        ("{{ 1 ", "unclosed action"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ if 1 }}x", "unexpected EOF: {{if}} without {{end}}"),
        (
            "{{ range 1 }}{{ else }}{{ else }}{{ end }}",
            "expected end; found {{else}}",
        ),
        ("{{ break }}", "{{break}} outside {{range}}"),
        (
            "{{ if 1 }}{{ continue }}{{ end }}",
            "{{continue}} outside {{range}}",
        ),
        (
            "{{ range 1 }}{{ break 1 }}{{ end }}",
            "unexpected \"1\" in {{break}}",
        ),
        ("{{ 1 | 2 }}", "non executable command in pipeline stage 2"),
        ("{{ }}", "missing value for command"),
        ("{{ if }}{{ end }}", "missing value for if"),
        ("{{ $x := }}", "missing value for command"),
        ("{{ \"abc }}", "unterminated quoted string"),
        ("{{ `abc }}", "unterminated raw quoted string"),
        ("{{ (1 }}", "unclosed left paren"),
        ("{{ 1) }}", "unexpected right paren"),
        ("{{ template \"x\" }}", "{{template}} is not supported"),
        ("{{ define \"x\" }}{{ end }}", "{{define}} is not supported"),
        ("{{\u{a0}}}", "unrecognized character in action: U+00A0"),
        (
            "{{ 99999999999999999999 }}",
            "integer overflow: \"99999999999999999999\"",
        ),
        ("{{ 1x }}", "bad number syntax: \"1x\""),
        ("{{ \"a\".b }}", "unexpected . after term \"\\\"a\\\"\""),
        ("{{ $x, $y := 1 }}", "too many declarations in command"),
        (
            "{{ range $a, $b, $c := 1 }}{{ end }}",
            "too many declarations in range",
        ),
        ("{{ \"\\q\" }}", "invalid syntax in string"),
        ("{{/* open", "unclosed comment"),
        ("{{/* c */ x}}", "comment ends before closing delimiter"),
        ("{{ .a#b }}", "bad character U+0023 '#'"),
        ("{{ 1 \"a\"\"b\" }}", "unexpected \"\\\"b\\\"\" in operand"),
        ("{{ 1 : 2 }}", "expected :="),
        ("{{ if 1 }}{{ else if }}{{ end }}", "missing value for if"),
        (
            "{{ if 1 }}{{ $y := 2 }}{{ end }}{{ $y }}",
            "undefined variable \"$y\"",
        ),
    ];
    for (text, want) in cases {
        let (_, _, msg) = parse_error(text);
        assert!(msg.contains(want), "{text:?}: got {msg:?}, want {want:?}");
    }
}

#[test]
fn exec_errors_table() {
    let cases = [
        (
            "{{ query \"missing\" | first }}",
            "error calling first: first() called on vector with no elements",
        ),
        (
            "{{ (query \"missing\").banana }}",
            "can't evaluate field banana in type template.queryResult",
        ),
        ("{{ .Foo }}", "can't evaluate field Foo in type struct {"),
        (
            "{{ index (query \"up\") 5 }}",
            "error calling index: index out of range: 5",
        ),
        (
            "{{ index $labels 1 }}",
            "value has type int; should be string",
        ),
        (
            "{{ $value | toUpper }}",
            "wrong type for value; expected string; got float64",
        ),
        ("{{ toUpper 5 }}", "expected string; found 5"),
        (
            "{{ label \"x\" }}",
            "wrong number of args for label: want 2 got 1",
        ),
        ("{{ eq 1 }}", "missing argument for comparison"),
        ("{{ eq 1 \"a\" }}", "incompatible types for comparison"),
        ("{{ lt true false }}", "invalid type for comparison"),
        (
            "{{ reReplaceAll \"(\" \"x\" \"y\" }}",
            "error calling reReplaceAll: regexp: Compile",
        ),
        (
            "{{ match \"(\" \"y\" }}",
            "error calling match: error parsing regexp",
        ),
        (
            "{{ \"a\" \"b\" }}",
            "can't give argument to non-function \"a\"",
        ),
        ("{{ nil }}", "nil is not a command"),
        ("{{ range 1.5 }}{{ end }}", "range can't iterate over 1.5"),
        (
            "{{ range $i, $v := 3 }}{{ end }}",
            "can't use 3 to iterate over more than one variable",
        ),
        ("{{ len 3 }}", "len of type int"),
        ("{{ slice \"abc\" 2 1 }}", "invalid slice index: 2 > 1"),
        (
            "{{ 18446744073709551615 }}",
            "18446744073709551615 overflows int",
        ),
        (
            "{{ .Labels \"x\" }}",
            "Labels has arguments but cannot be invoked as function",
        ),
        (
            "{{ first (args 1) }}",
            "wrong type for value; expected template.queryResult; got map[string]interface {}",
        ),
        ("{{ toTime \"NaN\" }}", "value is NaN or Inf"),
    ];
    for (text, want) in cases {
        let msg = exec_error(text);
        assert!(msg.contains(want), "{text:?}: got {msg:?}, want {want:?}");
        assert!(msg.starts_with("template: 1:"), "{msg}");
    }
}

#[test]
fn no_query_refuses() {
    let err = render_value("{{ query \"up\" }}", 1.0, &NoQuery).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: 1:4: executing at <query \"up\">: error calling query: query is not available here"
    );
}

#[test]
fn limits_stop_hostile_templates() {
    let nested = |n: usize| format!("{{{{ {}1{} }}}}", "(".repeat(n), ")".repeat(n));
    assert_eq!(render(&nested(99)).unwrap(), "1");
    assert!(
        parse_error(&nested(101))
            .2
            .contains("nesting deeper than 100 levels")
    );
    let ifs = |n: usize| format!("{}x{}", "{{ if 1 }}".repeat(n), "{{ end }}".repeat(n));
    assert_eq!(render(&ifs(100)).unwrap(), "x");
    assert!(parse_error(&ifs(101)).2.contains("nesting deeper"));

    let big = format!("{{{{ range 2000 }}}}{}{{{{ end }}}}", "x".repeat(1000));
    assert!(exec_error(&big).contains("output longer than 1048576 bytes"));
    assert!(
        exec_error("{{ range 200000 }}{{ end }}").contains("more than 100000 range iterations")
    );
    assert!(
        exec_error("{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}")
            .contains("range iterations")
    );
    assert!(exec_error("{{ printf \"%1000000d%1000000d\" 1 1 }}").contains("longer than"));
    let doubling =
        "{{ $s := \"xxxxxxxxxx\" }}{{ range 30 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}";
    assert!(exec_error(doubling).contains("longer than"));
    let replace = "{{ reReplaceAll \"\" (printf \"%1000s\" \"\") (printf \"%2000s\" \"\") }}";
    assert!(exec_error(replace).contains("longer than"));
    assert!(exec_error("{{ printf \"%.9999999f\" 1.0 }}").contains("longer than"));
    let copying = "{{ $s := printf \"%1000000s\" \"\" }}{{ range 100000 }}{{ $t := printf \"%s\" $s }}{{ end }}";
    assert!(exec_error(copying).contains("too much work"));
    let busy = format!(
        "{{{{ range 100000 }}}}{}{{{{ end }}}}",
        "{{ $x := 1 }}".repeat(200)
    );
    assert!(exec_error(&busy).contains("too much work"));
    let dag = "{{ $m := args 1 }}{{ range 99 }}{{ $m = args $m $m }}{{ end }}{{ $m }}";
    assert!(exec_error(dag).contains("output longer than"));
    let deep = "{{ $m := args 1 }}{{ range 200 }}{{ $m = args $m }}{{ end }}";
    assert!(exec_error(deep).contains("maps nested deeper than 100 levels"));
}

#[test]
fn plain_templates_skip_work() {
    let t = Template::parse("no actions here } {").unwrap();
    assert!(t.is_plain());
    assert_eq!(t.source(), "no actions here } {");
    let labels = BTreeMap::new();
    let data = TemplateData {
        labels: &labels,
        value: 1.0,
        external_labels: &labels,
        external_url: "",
        time_ms: 0,
    };
    assert_eq!(t.render(&data, &NoQuery).unwrap(), "no actions here } {");
    assert!(!Template::parse("a {{ 1 }}").unwrap().is_plain());
    assert_eq!(
        Template::parse("{{ pathPrefix }}")
            .unwrap()
            .render(&data, &NoQuery)
            .unwrap(),
        ""
    );
}

#[test]
fn template_is_shareable() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<Template>();
    assert_traits::<TemplateError>();
}

const ALPHABET: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    " ",
    "\n",
    "$",
    "$x",
    "$labels",
    "$value",
    ":=",
    "=",
    "|",
    "(",
    ")",
    ".",
    ".Labels",
    ".Value",
    ".instance",
    ",",
    "if",
    "else",
    "end",
    "range",
    "with",
    "break",
    "continue",
    "\"s\"",
    "\"%d %s %v %5.2f %q\"",
    "`r`",
    "1",
    "-1.5e3",
    "0x1F",
    "'a'",
    "100000",
    "nil",
    "true",
    "printf",
    "print",
    "humanize",
    "humanizeDuration",
    "humanizeTimestamp",
    "index",
    "slice",
    "len",
    "eq",
    "lt",
    "and",
    "or",
    "not",
    "query",
    "first",
    "value",
    "label",
    "args",
    ".arg0",
    "reReplaceAll",
    "match",
    "\"(a*)*\"",
    "toTime",
    "toDuration",
    "parseDuration",
    "\"1h\"",
    "title",
    "html",
    "js",
    "urlquery",
    "/*",
    "*/",
    "x",
    "é",
    "\\",
    "\"",
];

fn render_any(t: &Template) {
    let labels = map(&[("instance", "a:1")]);
    let data = TemplateData {
        labels: &labels,
        value: 1.5,
        external_labels: &labels,
        external_url: "http://h/p",
        time_ms: 0,
    };
    let _ = t.render(&data, &NoQuery);
    let _ = t.render(&data, &FakeQuery);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_and_render_arbitrary_text_never_panics(text in "\\PC*") {
        if let Ok(t) = Template::parse(&text) {
            render_any(&t);
        }
    }

    #[test]
    fn parse_and_render_action_soup_never_panics(
        parts in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..40)
    ) {
        let text: String = parts.concat();
        if let Ok(t) = Template::parse(&text) {
            render_any(&t);
        }
    }

    #[test]
    fn structured_templates_never_panic(
        pieces in proptest::collection::vec(prop_oneof![
            proptest::collection::vec(proptest::sample::select(ALPHABET), 1..6)
                .prop_map(|t| format!("{{{{ {} }}}}", t.join(" "))),
            proptest::sample::select(&["if 1", "range $i, $v := $labels", "with .Labels", "else", "end"][..])
                .prop_map(|k| format!("{{{{ {k} }}}}")),
            "[a-z ]{0,3}",
        ], 0..14)
    ) {
        let text: String = pieces.concat();
        if let Ok(t) = Template::parse(&text) {
            render_any(&t);
        }
    }

    #[test]
    fn braces_heavy_text_never_panics(text in "([{}$|() .\"`'a-z0-9-]|\\{\\{|\\}\\}){0,60}") {
        if let Ok(t) = Template::parse(&text) {
            render_any(&t);
        }
    }
}
