//! Data templates: Alertmanager-style notification templates over JSON.

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use super::*;

fn alert(status: &str, instance: &str, mount: &str, times: (&str, &str), value: Json) -> Json {
    let host = instance.split(':').next().unwrap_or("");
    json!({
        "Status": status,
        "Labels": {
            "alertname": "DiskFull",
            "instance": instance,
            "job": "node",
            "mount": mount,
            "severity": "critical",
        },
        "Annotations": {
            "summary": format!("Disk {mount} of {host} is almost full"),
            "runbook": "https://wiki.example.com/disk",
        },
        "StartsAt": times.0,
        "EndsAt": times.1,
        "GeneratorURL": "https://sysward.example.com/rules/disk",
        "Fingerprint": format!("fp-{host}"),
        "Value": value,
    })
}

/// What the notifier renders: 2 firing alerts and 1 resolved, grouped by alertname.
fn notification() -> Json {
    const ZERO: &str = "0001-01-01T00:00:00Z";
    json!({
        "Receiver": "ops-mail",
        "Status": "firing",
        "ExternalURL": "https://sysward.example.com",
        "GroupKey": "{}:{alertname=\"DiskFull\"}",
        "GroupLabels": { "alertname": "DiskFull" },
        "CommonLabels": { "alertname": "DiskFull", "job": "node", "severity": "critical" },
        "CommonAnnotations": { "runbook": "https://wiki.example.com/disk" },
        "Alerts": [
            alert("firing", "web-1:9100", "/", ("2024-05-01T10:00:00Z", ZERO), json!(97.25)),
            alert("firing", "web-2:9100", "/var", ("2024-05-01T12:05:30.25+02:00", ZERO), json!(91)),
            alert("resolved", "db-1:9100", "/data", ("2024-05-01T09:00:00Z", "2024-05-01T09:45:00Z"), Json::Null),
        ],
        "AckURL": "https://sysward.example.com/ack/n-42",
        "Event": "firing",
        "NotificationID": 42,
    })
}

fn render_over(text: &str, data: &Json) -> Result<String, TemplateError> {
    JsonTemplate::parse(text)?.render(data)
}

fn render(text: &str) -> Result<String, TemplateError> {
    render_over(text, &notification())
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

fn exec_error_over(text: &str, data: &Json) -> String {
    match render_over(text, data) {
        Err(TemplateError::Exec { message }) => message,
        other => panic!("{text:?}: expected an exec error, got {other:?}"),
    }
}

fn exec_error(text: &str) -> String {
    exec_error_over(text, &notification())
}

fn parse_error(text: &str) -> (usize, usize, String) {
    match JsonTemplate::parse(text) {
        Err(TemplateError::Parse {
            line,
            column,
            message,
        }) => (line, column, message),
        other => panic!("{text:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn alertmanager_default_title() {
    // Alertmanager's own `__subject`, word for word.
    check(&[(
        "[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ .Alerts.Firing | len }}{{ end }}] \
         {{ .GroupLabels.SortedPairs.Values | join \" \" }} \
         {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}\
         {{ .Values | join \" \" }}{{ end }}){{ end }}",
        "[FIRING:2] DiskFull (node critical)",
    )]);
}

#[test]
fn alertmanager_habits() {
    check(&[
        (
            "{{ range .Alerts }}{{ .Status }} {{ index .Labels \"instance\" }}: {{ .Annotations.summary }}\n{{ end }}",
            "firing web-1:9100: Disk / of web-1 is almost full\n\
             firing web-2:9100: Disk /var of web-2 is almost full\n\
             resolved db-1:9100: Disk /data of db-1 is almost full\n",
        ),
        (
            "{{ len .Alerts.Firing }} firing, {{ len .Alerts.Resolved }} resolved, {{ len .Alerts }} in all",
            "2 firing, 1 resolved, 3 in all",
        ),
        ("{{ .Alerts.Firing | len }}", "2"),
        (
            "{{ .CommonLabels.alertname }} on {{ .CommonLabels.job }}",
            "DiskFull on node",
        ),
        (
            "{{ range .Alerts.Resolved }}{{ .Labels.instance }} since {{ .EndsAt }}{{ end }}",
            "db-1:9100 since 2024-05-01T09:45:00Z",
        ),
        (
            "{{ range (index .Alerts 0).Labels.SortedPairs }}{{ .Name }}={{ .Value }};{{ end }}",
            "alertname=DiskFull;instance=web-1:9100;job=node;mount=/;severity=critical;",
        ),
        (
            "{{ join \",\" (index .Alerts 0).Labels.Names }}",
            "alertname,instance,job,mount,severity",
        ),
        (
            "{{ (index .Alerts 1).Labels.Values | join \",\" }}",
            "DiskFull,web-2:9100,node,/var,critical",
        ),
        (
            "{{ range .Alerts.Firing }}{{ .StartsAt.Format \"2006-01-02 15:04\" }} {{ end }}",
            "2024-05-01 10:00 2024-05-01 12:05 ",
        ),
        (
            "{{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Labels.instance }}{{ end }}",
            "web-1:9100, web-2:9100, db-1:9100",
        ),
        (
            "{{ range .Alerts }}{{ $.Receiver }}/{{ .Fingerprint }} {{ end }}",
            "ops-mail/fp-web-1 ops-mail/fp-web-2 ops-mail/fp-db-1 ",
        ),
        (
            "{{ range $k, $v := .CommonLabels }}{{ $k }}:{{ $v }} {{ end }}",
            "alertname:DiskFull job:node severity:critical ",
        ),
        (
            "{{ index .Alerts.Resolved 0 \"Labels\" \"instance\" }}",
            "db-1:9100",
        ),
        ("{{ slice .Alerts 1 | len }}", "2"),
        (
            "{{ with .CommonLabels.Remove (stringSlice \"alertname\" \"job\") }}{{ . }}{{ end }}",
            "severity=critical",
        ),
    ]);
}

#[test]
fn sysward_extras() {
    check(&[
        (
            "{{ if .AckURL }}Acknowledge: {{ .AckURL }}{{ end }}",
            "Acknowledge: https://sysward.example.com/ack/n-42",
        ),
        ("{{ .Event }} #{{ .NotificationID }}", "firing #42"),
        (
            "{{ range .Alerts }}{{ with .Value }}{{ humanize . }}{{ else }}-{{ end }} {{ end }}",
            "97.25 91 - ",
        ),
        ("{{ (index .Alerts 2).Value }}", "<no value>"),
        (
            "{{ printf \"%s: %d alerts, first at %.1f%%\" .Receiver (len .Alerts) (index .Alerts 0).Value }}",
            "ops-mail: 3 alerts, first at 97.2%",
        ),
        ("{{ .GroupKey }}", "{}:{alertname=\"DiskFull\"}"),
    ]);
    let no_ack = json!({ "AckURL": "", "Event": "resolved" });
    assert_eq!(
        render_over(
            "{{ .Event }}{{ with .AckURL }} ack: {{ . }}{{ end }}",
            &no_ack
        )
        .unwrap(),
        "resolved"
    );
}

#[test]
fn functions() {
    check(&[
        (
            "{{ .Receiver | toUpper }} {{ \"Disk FULL\" | toLower }} {{ \"disk FULL on web-1\" | title }}",
            "OPS-MAIL disk full Disk Full On Web-1",
        ),
        ("{{ \"  padded \\n\" | trimSpace }}|", "padded|"),
        (
            "{{ join \", \" (stringSlice \"a\" \"b\" \"c\") }}",
            "a, b, c",
        ),
        ("{{ stringSlice }} {{ join \",\" nil }}|", "[] |"),
        (
            "{{ reReplaceAll \":[0-9]+$\" \"\" (index (index .Alerts 0).Labels \"instance\") }}",
            "web-1",
        ),
        ("{{ \"<b>\" | safeHtml }}", "<b>"),
        (
            "{{ match \"^web-\" (index .Alerts 1).Labels.instance }}",
            "true",
        ),
        (
            "{{ 1234567 | humanize }} {{ 90 | humanizeDuration }}",
            "1.235M 1m 30s",
        ),
        ("{{ html \"<a>\" }} {{ urlquery \"a b\" }}", "&lt;a&gt; a+b"),
    ]);
}

#[test]
fn times() {
    check(&[
        ("{{ (index .Alerts 0).StartsAt }}", "2024-05-01T10:00:00Z"),
        (
            "{{ date \"Mon Jan _2 15:04:05 MST 2006\" (index .Alerts 1).StartsAt }}",
            "Wed May  1 12:05:30 +0200 2024",
        ),
        (
            "{{ (index .Alerts 0).StartsAt | date \"02/01/06 3:04pm MST\" }}",
            "01/05/24 10:00am UTC",
        ),
        (
            "{{ (index .Alerts 1).StartsAt.Format \"2006-01-02T15:04:05.000Z07:00 (Monday, January 2, 3:04PM, day 002)\" }}",
            "2024-05-01T12:05:30.250+02:00 (Wednesday, May 1, 12:05PM, day 122)",
        ),
        (
            "{{ (index .Alerts 1).StartsAt.Format \"15:04:05.999999 -0700 Z0700 -07 .9 ,00\" }}",
            "12:05:30.25 +0200 +0200 +02 .2 ,25",
        ),
        (
            "{{ (index .Alerts 0).StartsAt.Format \"Z07:00 -07:00 __2 Janet Month\" }}",
            "Z +00:00 122 Janet Month",
        ),
        (
            "{{ (index .Alerts 1).StartsAt.UTC }}",
            "2024-05-01T10:05:30.25Z",
        ),
        (
            "{{ (index .Alerts 0).StartsAt.Unix }} {{ (index .Alerts 1).StartsAt.UnixMilli }}",
            "1714557600 1714557930250",
        ),
        (
            "{{ (index .Alerts 0).EndsAt.Format \"2006-01-02\" }} {{ (index .Alerts 0).EndsAt.Unix }}",
            "0001-01-01 -62135596800",
        ),
        (
            "{{ (toTime 1435065584.128).Format \"2006-01-02 15:04:05.000 MST\" }}",
            "2015-06-23 13:19:44.128 UTC",
        ),
    ]);
    let leap = json!({ "t": "2024-02-29T23:59:59-07:30" });
    assert_eq!(
        render_over(
            "{{ .t.Format \"Monday January 2 03 PM, day 2 of year 06\" }} {{ .t.Unix }}",
            &leap
        )
        .unwrap(),
        "Thursday February 29 11 PM, day 29 of year 24 1709278199"
    );
}

#[test]
fn sorted_pairs_put_alertname_first() {
    let data = json!({ "l": { "zone": "z", "instance": "i", "alertname": "A", "Beta": "b" } });
    let cases = [
        (
            "{{ range .l.SortedPairs }}{{ .Name }} {{ end }}",
            "alertname Beta instance zone ",
        ),
        ("{{ .l.Names }}", "[alertname Beta instance zone]"),
        ("{{ .l.Values }}", "[A b i z]"),
        (
            "{{ .l.SortedPairs.Names }}",
            "[alertname Beta instance zone]",
        ),
        (
            "{{ .l }}|{{ .l.SortedPairs }}",
            "alertname=A, Beta=b, instance=i, zone=z|alertname=A, Beta=b, instance=i, zone=z",
        ),
        // `range` over the map itself goes in plain key order, as in Go.
        (
            "{{ range $k, $v := .l }}{{ $k }} {{ end }}",
            "Beta alertname instance zone ",
        ),
        (
            "{{ printf \"%q\" (.l.Remove (stringSlice \"zone\" \"Beta\")) }}",
            "\"alertname=A, instance=i\"",
        ),
    ];
    for (text, want) in cases {
        let got = render_over(text, &data);
        assert_eq!(got.as_deref().ok(), Some(want), "{text:?}: {got:?}");
    }
}

#[test]
fn missing_keys_read_as_empty() {
    check(&[
        (
            "{{ .CommonLabels.nope }}|{{ .Nope }}|{{ index .CommonLabels \"nope\" }}|{{ (index .Alerts 0).Labels.nope }}|",
            "||||",
        ),
        ("{{ if .CommonAnnotations.nope }}y{{ else }}n{{ end }}", "n"),
        ("{{ .Nope | len }}", "0"),
        ("{{ with .Nope }}x{{ else }}none{{ end }}", "none"),
    ]);
}

#[test]
fn data_of_any_shape() {
    let cases = [
        (json!("text"), "{{ . }} {{ $ }} {{ len . }}", "text text 4"),
        (json!(null), "{{ . }}|{{ if . }}y{{ end }}", "<no value>|"),
        (
            json!([1, 2.5, true, "x", null]),
            "{{ . }}",
            "[1 2.5 true x <nil>]",
        ),
        (
            json!([1, 2.5]),
            "{{ range . }}{{ printf \"%T \" . }}{{ end }}",
            "int float64 ",
        ),
        (
            json!({ "a": { "b": [1, { "c": "d" }] } }),
            "{{ .a }}",
            "map[b:[1 c=d]]",
        ),
        (
            json!({ "a": { "b": [1, { "c": "d" }] } }),
            "{{ (index .a.b 1).c }}",
            "d",
        ),
        (
            json!(18446744073709551615u64),
            "{{ . }}",
            "1.8446744073709552e+19",
        ),
        (json!({}), "{{ . }}|{{ len . }}", "|0"),
    ];
    for (data, text, want) in cases {
        let got = render_over(text, &data);
        assert_eq!(
            got.as_deref().ok(),
            Some(want),
            "{text:?} over {data}: {got:?}"
        );
    }
}

#[test]
fn parse_errors_keep_positions() {
    assert_eq!(
        parse_error("line one\n  {{ $labels.instance }}"),
        (2, 6, "undefined variable \"$labels\"".to_string())
    );
    assert_eq!(
        parse_error("{{ $value }}"),
        (1, 4, "undefined variable \"$value\"".to_string())
    );
    for (text, func) in [
        ("{{ query \"up\" }}", "query"),
        ("{{ externalURL }}", "externalURL"),
        ("{{ now }}", "now"),
        ("{{ tz \"UTC\" .StartsAt }}", "tz"),
        ("{{ toJson . }}", "toJson"),
    ] {
        assert_eq!(
            parse_error(text),
            (1, 4, format!("function \"{func}\" not defined"))
        );
    }
    assert_eq!(
        parse_error("{{ if .Status }}").2,
        "unexpected EOF: {{if}} without {{end}}"
    );
    assert_eq!(
        JsonTemplate::parse("x {{ .a").unwrap_err().to_string(),
        "template: 1:3: unclosed action"
    );
    // Rule templates keep Prometheus' functions only.
    assert!(Template::parse("{{ join \",\" nil }}").is_err());
    assert_eq!(
        Template::parse("{{ title \"aB\" }}")
            .unwrap()
            .render(
                &TemplateData {
                    labels: &Default::default(),
                    value: 0.0,
                    external_labels: &Default::default(),
                    external_url: "",
                    time_ms: 0,
                },
                &NoQuery
            )
            .unwrap(),
        "AB"
    );
}

#[test]
fn exec_errors() {
    let cases = [
        (
            "{{ .Alerts.Foo }}",
            "can't evaluate field Foo in type []interface {}",
        ),
        (
            "{{ .Receiver.Name }}",
            "can't evaluate field Name in type string",
        ),
        (
            "{{ .Nope.deeper }}",
            "can't evaluate field deeper in type string",
        ),
        (
            "{{ .NotificationID.x }}",
            "can't evaluate field x in type int",
        ),
        (
            "{{ .Status.Format \"15:04\" }}",
            "error calling Format: \"firing\" is not an RFC 3339 time",
        ),
        (
            "{{ .Status.Unix }}",
            "error calling Unix: \"firing\" is not an RFC 3339 time",
        ),
        (
            "{{ .CommonLabels.Remove }}",
            "wrong number of args for Remove: want 1 got 0",
        ),
        (
            "{{ .CommonLabels.SortedPairs 1 }}",
            "wrong number of args for SortedPairs: want 0 got 1",
        ),
        (
            "{{ .CommonLabels.alertname 1 }}",
            "alertname is not a method but has arguments",
        ),
        (
            "{{ join \",\" .Alerts }}",
            "wrong type for value; expected []string; got []interface {}",
        ),
        (
            "{{ .CommonLabels.Remove \"job\" }}",
            "can't handle job for arg of type []string",
        ),
        (
            "{{ date \"2006\" .Status }}",
            "error calling date: \"firing\" is not an RFC 3339 time",
        ),
        (
            "{{ date \"2006\" 5 }}",
            "error calling date: wrong type for value; expected time.Time; got int",
        ),
        (
            "{{ index .Alerts 3 }}",
            "error calling index: index out of range: 3",
        ),
        (
            "{{ index .Alerts \"a\" }}",
            "cannot index slice/array with type string",
        ),
        ("{{ lt .Alerts .Alerts }}", "invalid type for comparison"),
        (
            "{{ eq .Alerts .Alerts }}",
            "non-comparable type []interface {}",
        ),
        (
            "{{ humanize .CommonLabels }}",
            "can't convert map[string]interface {} to float",
        ),
        // A method's name alone is a call without its arguments, as in Go.
        (
            "{{ printf \"%v\" .CommonLabels.Remove }}",
            "wrong number of args for Remove: want 1 got 0",
        ),
        (
            "{{ .Alerts.Firing.Names }}",
            "can't evaluate field Names in type []interface {}",
        ),
        // A missing key is "", and "" is no list.
        ("{{ range .Nope }}x{{ end }}", "range can't iterate over "),
    ];
    for (text, want) in cases {
        let msg = exec_error(text);
        assert!(msg.contains(want), "{text:?}: got {msg:?}, want {want:?}");
        assert!(msg.starts_with("template: 1:"), "{msg}");
    }
}

fn nested(depth: usize) -> Json {
    (0..depth).fold(json!("bottom"), |inner, _| json!([inner]))
}

#[test]
fn deep_data_is_refused() {
    let msg = exec_error_over("{{ . }}", &nested(150));
    assert_eq!(msg, "template: data nested deeper than 100 levels");
    assert!(render_over("{{ . }}", &nested(90)).is_ok());
    // A plain text never looks at the data.
    assert_eq!(render_over("plain", &nested(150)).unwrap(), "plain");
}

/// `n` firing alerts, for the limits.
fn many_alerts(n: usize) -> Json {
    let alerts: Vec<Json> = (0..n)
        .map(|i| {
            let instance = format!("host-{i}:9100");
            alert(
                "firing",
                &instance,
                "/",
                ("2024-05-01T10:00:00Z", ""),
                json!(i),
            )
        })
        .collect();
    json!({ "Alerts": alerts })
}

#[test]
fn limits_stop_hostile_templates() {
    let data = many_alerts(2000);
    let loops = [
        (
            "{{ range .Alerts }}{{ range $.Alerts }}{{ end }}{{ end }}",
            "more than 100000 range iterations",
        ),
        (
            "{{ range 100000 }}{{ $.Alerts }}{{ end }}",
            "output longer than 1048576 bytes",
        ),
        (
            "{{ range 100000 }}{{ $x := $.Alerts.Firing }}{{ end }}",
            "too much work",
        ),
        (
            "{{ range 100000 }}{{ range $.Alerts }}{{ break }}{{ end }}{{ end }}",
            "too much work",
        ),
        (
            "{{ $l := printf \"%1000000s\" \"\" }}{{ range 1000 }}{{ $x := (index $.Alerts 0).StartsAt.Format $l }}{{ end }}",
            "too much work",
        ),
        (
            "{{ $l := printf \"%1000000s\" \"\" }}{{ range 1000 }}{{ $x := date $l (index $.Alerts 0).StartsAt }}{{ end }}",
            "too much work",
        ),
        (
            "{{ $s := \"xxxxxxxxxx\" }}{{ range 30 }}{{ $s = printf \"%s%s\" $s $s }}{{ end }}",
            "longer than",
        ),
        (
            "{{ $m := . }}{{ range 200 }}{{ $m = args $m }}{{ end }}",
            "maps nested deeper than 100 levels",
        ),
        (
            // Each `3` (the hour on a 12-hour clock) becomes `10`.
            "{{ $l := reReplaceAll \" \" \"3\" (printf \"%600000s\" \"\") }}{{ (index $.Alerts 0).StartsAt.Format $l }}",
            "error calling Format: result longer than 1048576 bytes",
        ),
    ];
    for (text, want) in loops {
        let started = std::time::Instant::now();
        let msg = exec_error_over(text, &data);
        assert!(msg.contains(want), "{text:?}: got {msg:?}, want {want:?}");
        assert!(
            started.elapsed().as_secs() < 20,
            "{text:?} took {:?}",
            started.elapsed()
        );
    }
    let keys: serde_json::Map<String, Json> =
        (0..20_000).map(|i| (format!("k{i}"), json!(""))).collect();
    let wide = json!({ "l": keys });
    let joined = "{{ $n := .l.Names }}{{ range 100000 }}{{ $x := join \"\" $n }}{{ end }}";
    assert!(exec_error_over(joined, &wide).contains("too much work"));
}

#[test]
fn template_is_shareable() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<JsonTemplate>();
    let t = JsonTemplate::parse("{{ .Receiver }}").unwrap();
    assert_eq!(t.source(), "{{ .Receiver }}");
    assert!(!t.is_plain());
    assert!(JsonTemplate::parse("no actions").unwrap().is_plain());
}

const DATA_ALPHABET: &[&str] = &[
    "{{",
    "}}",
    "{{- ",
    " -}}",
    " ",
    "\n",
    "$",
    "$x",
    ":=",
    "=",
    "|",
    "(",
    ")",
    ",",
    ".",
    "if",
    "else",
    "end",
    "range",
    "with",
    "break",
    "continue",
    ".Alerts",
    ".Firing",
    ".Resolved",
    ".Labels",
    ".SortedPairs",
    ".Names",
    ".Values",
    ".Name",
    ".Value",
    ".Remove",
    ".StartsAt",
    ".Format",
    ".Unix",
    ".UnixMilli",
    ".UTC",
    ".Status",
    ".alertname",
    ".x",
    "\"firing\"",
    "\"2006-01-02 15:04:05.000 MST Z07:00 Jan Monday pm _2 __2 002 .999 ,0\"",
    "\"Z07\"",
    "1",
    "0",
    "-1",
    "100000",
    "nil",
    "true",
    "len",
    "index",
    "slice",
    "join",
    "\",\"",
    "stringSlice",
    "trimSpace",
    "date",
    "title",
    "toUpper",
    "humanize",
    "printf",
    "\"%v %d %s %q %x %T %5.1f\"",
    "print",
    "eq",
    "gt",
    "lt",
    "and",
    "or",
    "not",
    "args",
    ".arg0",
    "reReplaceAll",
    "match",
    "safeHtml",
    "html",
    "js",
    "toTime",
    "x",
    "é",
];

const KEYS: &[&str] = &[
    "Alerts",
    "Labels",
    "Status",
    "alertname",
    "StartsAt",
    "Value",
    "Name",
    "Firing",
    "Names",
    "x",
];

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        proptest::sample::select(
            &[
                "firing",
                "resolved",
                "2024-05-01T10:00:00Z",
                "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999999999-23:59",
                "2024-02-30T10:00:00Z",
                "",
            ][..]
        )
        .prop_map(Json::from),
        "\\PC{0,8}".prop_map(Json::from),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            proptest::collection::btree_map(proptest::sample::select(KEYS), inner, 0..6).prop_map(
                |m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            ),
        ]
    })
}

fn arb_template() -> impl Strategy<Value = String> {
    let action = proptest::collection::vec(proptest::sample::select(DATA_ALPHABET), 1..7)
        .prop_map(|t| format!("{{{{ {} }}}}", t.join(" ")));
    let control = proptest::sample::select(
        &[
            "{{ range .Alerts }}",
            "{{ range $k, $v := .Labels }}",
            "{{ with .Labels }}",
            "{{ if .Status }}",
            "{{ else }}",
            "{{ end }}",
        ][..],
    )
    .prop_map(str::to_string);
    let soup = proptest::collection::vec(proptest::sample::select(DATA_ALPHABET), 0..30)
        .prop_map(|t| t.concat());
    prop_oneof![
        proptest::collection::vec(prop_oneof![action, control, "[a-z ]{0,3}"], 0..12)
            .prop_map(|p| p.concat()),
        soup,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_templates_over_random_json_never_panic(text in arb_template(), data in arb_json()) {
        if let Ok(t) = JsonTemplate::parse(&text) {
            let _ = t.render(&data);
            let _ = t.render(&notification());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        if let Ok(t) = JsonTemplate::parse(&text) {
            let _ = t.render(&notification());
        }
    }

    #[test]
    fn arbitrary_layouts_and_times_never_panic(layout in "\\PC{0,40}", time in "[-+:.0-9TZ]{0,30}") {
        let data = json!({ "t": time, "l": layout });
        let _ = render_over("{{ .t.Format .l }}{{ .t.Unix }}{{ .t.UTC }}", &data);
        let _ = render_over("{{ (toTime 1e9).Format .l }}", &data);
    }

    #[test]
    fn rfc3339_reads_back(
        y in 0i64..10_000, mo in 1i64..13, d in 1i64..29, h in 0i64..24, mi in 0i64..60,
        s in 0i64..60, ns in 0i64..1_000_000_000, off in -1439i64..1440,
    ) {
        let sign = if off < 0 { '-' } else { '+' };
        let zone = format!("{sign}{:02}:{:02}", off.abs() / 60, off.abs() % 60);
        let text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ns:09}{zone}");
        let data = json!({ "t": text });
        let got = render_over("{{ .t.Format \"2006-01-02T15:04:05.000000000-07:00\" }}", &data);
        prop_assert_eq!(got.ok(), Some(text.clone()));
        // The same instant in UTC reads back to the same Unix time.
        let utc = render_over("{{ .t.UTC.Unix }} {{ .t.Unix }}", &data).expect("renders");
        let (a, b) = utc.split_once(' ').expect("two numbers");
        prop_assert_eq!(a, b);
    }
}
