//! User-defined dashboards of the console: what a dashboard is, and the checks a body
//! must pass before it is stored (in `state.db`, table `dashboards`, see [`crate::state`]).
//!
//! A dashboard has a title, an owner (a console user, or `admin` for an admin token), a
//! list of editors (user names) or "all editors" (every user of role editor or admin), a
//! `public` flag, and a definition: a refresh interval, a default time range and one or
//! more pages, each a grid of 12 columns holding widgets. A widget is a PromQL query
//! (or, for the alert summary, an optional label matcher filter) with a type, a place
//! (`x`, `y`, `w`, `h` in grid cells) and options.
//!
//! Everything is bounded ([`MAX_WIDGETS`], [`MAX_QUERY_BYTES`], ...) and every refusal
//! names where it is, as `pages[0].widgets[3].query: empty`. Parsing never panics on any
//! body (a property test feeds it arbitrary JSON).

use std::collections::HashSet;

use serde::{Deserialize, Serialize, de::IgnoredAny};

/// Dashboards a server keeps at most.
pub const MAX_DASHBOARDS: usize = 1000;
/// Widgets of one dashboard, all pages together.
pub const MAX_WIDGETS: usize = 100;
/// Pages of one dashboard.
pub const MAX_PAGES: usize = 20;
/// The largest body of a create or an update, and so the largest definition.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The longest query of a widget.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The longest title (dashboard, page or widget), in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Editors listed on one dashboard.
pub const MAX_EDITORS: usize = 100;
/// Thresholds of one widget.
pub const MAX_THRESHOLDS: usize = 10;
/// Rows of the grid (`y + h` at most).
pub const MAX_ROWS: u32 = 1000;
/// Columns of the grid.
pub const COLUMNS: u32 = 12;
/// The time ranges a dashboard may default to (the picker's choices).
pub const TIME_RANGES: &[&str] = &["1h", "3h", "6h", "12h", "24h", "7d", "30d"];
/// Units a widget may show its values in (those of the console's charts).
pub const UNITS: &[&str] = &["", "percent", "bytes", "bytes/s", "seconds"];

/// What a widget shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WidgetType {
    Timeseries,
    Gauge,
    Status,
    Toplist,
    Heatmap,
    Alerts,
}

impl WidgetType {
    /// Whether the widget reads a range (start, end, step) rather than one instant.
    pub fn is_range(self) -> bool {
        matches!(self, WidgetType::Timeseries | WidgetType::Heatmap)
    }
}

/// A threshold's colour: the state a value at or above it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Ok,
    Warn,
    Crit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub value: f64,
    pub colour: Colour,
}

/// A widget's options; each type reads those that apply to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidgetOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    /// Rows of a top list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacked: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Widget {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: WidgetType,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub query: String,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    #[serde(default)]
    pub options: WidgetOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub title: String,
    #[serde(default)]
    pub widgets: Vec<Widget>,
}

/// What is stored as the definition: pages, refresh interval and time range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    /// Seconds between refreshes; 0 for none.
    pub refresh_seconds: u32,
    pub time_range: String,
    pub pages: Vec<Page>,
}

impl Definition {
    pub fn widget(&self, id: &str) -> Option<&Widget> {
        self.pages
            .iter()
            .flat_map(|p| p.widgets.iter())
            .find(|w| w.id == id)
    }
}

/// The body of a create (`POST`) or an update (`PUT`, with `version`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardBody {
    pub title: String,
    #[serde(default)]
    pub editors: Vec<String>,
    #[serde(default)]
    pub all_editors: bool,
    #[serde(default = "default_refresh")]
    pub refresh_seconds: u32,
    #[serde(default = "default_range")]
    pub time_range: String,
    pub pages: Vec<Page>,
    /// The version the change was made from; required by an update.
    #[serde(default)]
    pub version: Option<i64>,
    // What a `GET` adds, so that its answer can be sent back changed: never taken.
    #[serde(default, rename = "id")]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "owner")]
    _owner: Option<IgnoredAny>,
    #[serde(default, rename = "public")]
    _public: Option<IgnoredAny>,
    #[serde(default, rename = "created_ms")]
    _created_ms: Option<IgnoredAny>,
    #[serde(default, rename = "updated_ms")]
    _updated_ms: Option<IgnoredAny>,
    #[serde(default, rename = "can_edit")]
    _can_edit: Option<IgnoredAny>,
    #[serde(default, rename = "can_delete")]
    _can_delete: Option<IgnoredAny>,
    #[serde(default, rename = "public_dashboards")]
    _public_dashboards: Option<IgnoredAny>,
}

fn default_refresh() -> u32 {
    60
}

fn default_range() -> String {
    "1h".into()
}

impl DashboardBody {
    pub fn definition(&self) -> Definition {
        Definition {
            refresh_seconds: self.refresh_seconds,
            time_range: self.time_range.clone(),
            pages: self.pages.clone(),
        }
    }
}

/// Why a body was refused: where, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Reads and checks a body. A type error names its place as a check does.
pub fn parse_body(bytes: &[u8]) -> Result<DashboardBody, Invalid> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("body", "a JSON object is expected"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let body: DashboardBody = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = if e.path().iter().next().is_none() {
            "body".to_string()
        } else {
            e.path().to_string()
        };
        invalid(path, e.into_inner().to_string())
    })?;
    validate(&body)?;
    Ok(body)
}

fn check_title(path: &str, title: &str, required: bool) -> Result<(), Invalid> {
    if required && title.trim().is_empty() {
        return Err(invalid(path, "empty"));
    }
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(invalid(
            path,
            format!("{chars} characters; at most {MAX_TITLE_CHARS}"),
        ));
    }
    if title.chars().any(char::is_control) {
        return Err(invalid(path, "holds a control character"));
    }
    Ok(())
}

/// Checks everything a parsed body holds.
pub fn validate(body: &DashboardBody) -> Result<(), Invalid> {
    check_title("title", &body.title, true)?;
    if body.editors.len() > MAX_EDITORS {
        return Err(invalid(
            "editors",
            format!("{} names; at most {MAX_EDITORS}", body.editors.len()),
        ));
    }
    for (i, name) in body.editors.iter().enumerate() {
        crate::users::check_name(name).map_err(|e| invalid(format!("editors[{i}]"), e))?;
    }
    if body.refresh_seconds != 0 && !(5..=86_400).contains(&body.refresh_seconds) {
        return Err(invalid(
            "refresh_seconds",
            format!(
                "{}: 0 (no refresh) or 5 to 86400 seconds",
                body.refresh_seconds
            ),
        ));
    }
    if !TIME_RANGES.contains(&body.time_range.as_str()) {
        return Err(invalid(
            "time_range",
            format!("{:?}: one of {}", body.time_range, TIME_RANGES.join(", ")),
        ));
    }
    check_pages(&body.pages)
}

fn check_pages(pages: &[Page]) -> Result<(), Invalid> {
    if pages.is_empty() {
        return Err(invalid("pages", "a dashboard has at least one page"));
    }
    if pages.len() > MAX_PAGES {
        return Err(invalid(
            "pages",
            format!("{} pages; at most {MAX_PAGES}", pages.len()),
        ));
    }
    let total: usize = pages.iter().map(|p| p.widgets.len()).sum();
    if total > MAX_WIDGETS {
        return Err(invalid(
            "pages",
            format!("{total} widgets; a dashboard has at most {MAX_WIDGETS}"),
        ));
    }
    let mut ids = HashSet::new();
    for (p, page) in pages.iter().enumerate() {
        check_title(&format!("pages[{p}].title"), &page.title, true)?;
        for (i, widget) in page.widgets.iter().enumerate() {
            let path = format!("pages[{p}].widgets[{i}]");
            check_widget(&path, widget)?;
            if !ids.insert(widget.id.as_str()) {
                return Err(invalid(
                    format!("{path}.id"),
                    format!("{:?} is the id of another widget", widget.id),
                ));
            }
        }
    }
    Ok(())
}

fn check_widget(path: &str, w: &Widget) -> Result<(), Invalid> {
    let id_ok = !w.id.is_empty()
        && w.id.len() <= 32
        && w.id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Err(invalid(
            format!("{path}.id"),
            format!("{:?}: 1 to 32 ASCII letters, digits, '-' or '_'", w.id),
        ));
    }
    check_title(&format!("{path}.title"), &w.title, false)?;
    check_place(path, w)?;
    check_query(path, w)?;
    check_options(&format!("{path}.options"), &w.options)
}

fn check_place(path: &str, w: &Widget) -> Result<(), Invalid> {
    if !(1..=COLUMNS).contains(&w.w) {
        return Err(invalid(
            format!("{path}.w"),
            format!("{}: 1 to {COLUMNS} columns", w.w),
        ));
    }
    if w.x.saturating_add(w.w) > COLUMNS {
        return Err(invalid(
            format!("{path}.x"),
            format!(
                "{} with width {}: the widget ends past column {COLUMNS}",
                w.x, w.w
            ),
        ));
    }
    if !(1..=12).contains(&w.h) {
        return Err(invalid(
            format!("{path}.h"),
            format!("{}: 1 to 12 rows", w.h),
        ));
    }
    if w.y.saturating_add(w.h) > MAX_ROWS {
        return Err(invalid(
            format!("{path}.y"),
            format!("{}: the widget ends past row {MAX_ROWS}", w.y),
        ));
    }
    Ok(())
}

fn check_query(path: &str, w: &Widget) -> Result<(), Invalid> {
    let at = format!("{path}.query");
    if w.query.len() > MAX_QUERY_BYTES {
        return Err(invalid(
            at,
            format!("{} bytes; at most {MAX_QUERY_BYTES}", w.query.len()),
        ));
    }
    if w.kind == WidgetType::Alerts {
        return match alert_filter(&w.query) {
            Ok(_) => Ok(()),
            Err(e) => Err(invalid(at, e)),
        };
    }
    if w.query.trim().is_empty() {
        return Err(invalid(at, "empty"));
    }
    crate::query::parse(&w.query).map_err(|e| invalid(at, e.to_string()))?;
    Ok(())
}

/// The matcher lists of an alert summary's filter (none: every alert), e.g.
/// `{severity="critical", instance=~"web.*"}`.
pub fn alert_filter(text: &str) -> Result<Vec<crate::selector::Selector>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    crate::selector::parse_selector(text).map_err(|e| {
        format!("a label matcher filter such as {{severity=\"critical\"}} is expected: {e}")
    })
}

fn check_options(path: &str, o: &WidgetOptions) -> Result<(), Invalid> {
    if let Some(unit) = &o.unit
        && !UNITS.contains(&unit.as_str())
    {
        return Err(invalid(
            format!("{path}.unit"),
            format!("{unit:?}: one of \"\", {}", UNITS[1..].join(", ")),
        ));
    }
    for (key, v) in [("min", o.min), ("max", o.max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(invalid(format!("{path}.{key}"), "not a finite number"));
        }
    }
    if let (Some(min), Some(max)) = (o.min, o.max)
        && min >= max
    {
        return Err(invalid(
            format!("{path}.max"),
            format!("{max} is not above min {min}"),
        ));
    }
    if o.thresholds.len() > MAX_THRESHOLDS {
        return Err(invalid(
            format!("{path}.thresholds"),
            format!(
                "{} thresholds; at most {MAX_THRESHOLDS}",
                o.thresholds.len()
            ),
        ));
    }
    for (i, t) in o.thresholds.iter().enumerate() {
        if !t.value.is_finite() {
            return Err(invalid(
                format!("{path}.thresholds[{i}].value"),
                "not a finite number",
            ));
        }
    }
    if let Some(n) = o.n
        && !(1..=100).contains(&n)
    {
        return Err(invalid(format!("{path}.n"), format!("{n}: 1 to 100 rows")));
    }
    Ok(())
}

/// Whether `user` may change a dashboard of `owner` with these editors: the owner, a
/// listed editor, anyone of role editor when `all_editors`, and every admin. The caller's
/// role must allow changes at all (checked before, by the API's `Change` access).
pub fn may_edit(
    user: &str,
    is_admin: bool,
    owner: &str,
    editors: &[String],
    all_editors: bool,
) -> bool {
    is_admin || user == owner || all_editors || editors.iter().any(|e| e == user)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn widget(id: &str, kind: &str, query: &str) -> Value {
        json!({ "id": id, "type": kind, "title": "t", "query": query,
                "x": 0, "y": 0, "w": 6, "h": 4 })
    }

    fn body(widgets: Vec<Value>) -> Value {
        json!({ "title": "Web", "pages": [{ "title": "Main", "widgets": widgets }] })
    }

    fn refusal(v: &Value) -> String {
        parse_body(v.to_string().as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_good_body_passes_with_its_defaults() {
        let b = parse_body(
            body(vec![
                widget("cpu", "timeseries", "rate(node_cpu_seconds_total[5m])"),
                widget("a", "alerts", ""),
                widget("b", "alerts", "{severity=\"critical\"}"),
            ])
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!((b.refresh_seconds, b.time_range.as_str()), (60, "1h"));
        assert!(b.definition().widget("cpu").is_some());
        assert!(b.definition().widget("nope").is_none());
    }

    #[test]
    fn refusals_say_where() {
        let mut w = widget("x", "gauge", "up");
        w["query"] = json!("");
        let two = vec![widget("a", "gauge", "up"), w];
        assert_eq!(refusal(&body(two)), "pages[0].widgets[1].query: empty");
        let bad = refusal(&body(vec![widget("a", "timeseries", "rate(up[5m]")]));
        assert!(bad.starts_with("pages[0].widgets[0].query: "), "{bad}");
        let bad = refusal(&body(vec![widget("a", "alerts", "rate(up[5m])")]));
        assert!(
            bad.starts_with("pages[0].widgets[0].query: a label matcher"),
            "{bad}"
        );
        let bad = refusal(&body(vec![widget("a", "pie", "up")]));
        assert!(
            bad.starts_with("pages[0].widgets[0].type: unknown variant"),
            "{bad}"
        );
        let mut w = widget("a", "gauge", "up");
        w["x"] = json!(8);
        assert!(refusal(&body(vec![w])).starts_with("pages[0].widgets[0].x: 8 with width 6"));
        let mut w = widget("a", "gauge", "up");
        w["options"] = json!({ "thresholds": [{ "value": 1, "colour": "red" }] });
        let bad = refusal(&body(vec![w]));
        assert!(
            bad.starts_with("pages[0].widgets[0].options.thresholds[0].colour"),
            "{bad}"
        );
        let mut w = widget("a", "gauge", "up");
        w["options"] = json!({ "min": 5, "max": 1 });
        assert!(refusal(&body(vec![w])).starts_with("pages[0].widgets[0].options.max"));
        let dup = vec![widget("a", "gauge", "up"), widget("a", "gauge", "up")];
        assert!(refusal(&body(dup)).starts_with("pages[0].widgets[1].id"));
        let mut b = body(vec![]);
        b["title"] = json!(" ");
        assert_eq!(refusal(&b), "title: empty");
        b["title"] = json!("x".repeat(MAX_TITLE_CHARS + 1));
        assert!(refusal(&b).starts_with("title: 201 characters"));
        let mut b = body(vec![]);
        b["editors"] = json!(["ok", "no way"]);
        assert!(refusal(&b).starts_with("editors[1]: "));
        b["editors"] = json!([]);
        b["time_range"] = json!("2y");
        assert!(refusal(&b).starts_with("time_range: "));
        b["time_range"] = json!("7d");
        b["refresh_seconds"] = json!(1);
        assert!(refusal(&b).starts_with("refresh_seconds: "));
        b["refresh_seconds"] = json!(0);
        b["pages"] = json!([]);
        assert_eq!(refusal(&b), "pages: a dashboard has at least one page");
        assert_eq!(refusal(&json!([1])), "body: a JSON object is expected");
        assert!(parse_body(b"{").is_err());
        let mut b = body(vec![]);
        b["colour"] = json!("x");
        assert!(refusal(&b).contains("unknown field"));
    }

    #[test]
    fn what_a_get_adds_is_ignored() {
        let mut b = body(vec![widget("a", "gauge", "up")]);
        for (k, v) in [
            ("id", json!("x")),
            ("owner", json!("ann")),
            ("public", json!(true)),
            ("can_edit", json!(true)),
            ("version", json!(3)),
        ] {
            b[k] = v;
        }
        let parsed = parse_body(b.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.version, Some(3));
    }

    #[test]
    fn limits_are_kept() {
        let many: Vec<Value> = (0..=MAX_WIDGETS)
            .map(|i| widget(&format!("w{i}"), "gauge", "up"))
            .collect();
        assert!(refusal(&body(many)).starts_with("pages: 101 widgets"));
        let long = format!("up{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        assert!(
            refusal(&body(vec![widget("a", "gauge", &long)]))
                .starts_with("pages[0].widgets[0].query: 4")
        );
    }

    #[test]
    fn who_may_edit() {
        let eds = vec!["eve".to_string()];
        assert!(may_edit("ann", false, "ann", &[], false));
        assert!(may_edit("eve", false, "ann", &eds, false));
        assert!(!may_edit("bob", false, "ann", &eds, false));
        assert!(may_edit("bob", false, "ann", &eds, true));
        assert!(may_edit("bob", true, "ann", &[], false));
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z_{}()\\[\\]\"=~ 0-9]{0,12}".prop_map(Value::from),
            prop::sample::select(vec![
                "title",
                "pages",
                "widgets",
                "type",
                "gauge",
                "alerts",
                "query",
                "x",
                "w",
                "options",
                "thresholds",
                "up",
            ])
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "title",
                        "pages",
                        "widgets",
                        "id",
                        "type",
                        "query",
                        "x",
                        "y",
                        "w",
                        "h",
                        "options",
                        "unit",
                        "min",
                        "max",
                        "thresholds",
                        "value",
                        "colour",
                        "n",
                        "editors",
                        "all_editors",
                        "refresh_seconds",
                        "time_range",
                        "version",
                    ])
                    .prop_map(String::from),
                    inner,
                    0..8
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics_the_validator(v in any_json()) {
            let _ = parse_body(v.to_string().as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic_it(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_body(&bytes);
        }
    }
}
