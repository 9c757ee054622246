//! Collector settings from `agent.toml`: the keys of a `[collectors.NAME]` table other
//! than the agent's own ([`AGENT_KEYS`]), read into each collector's `XxxConfig`.
//!
//! Each collector with tunables declares a private `XxxSettings` struct (serde, every
//! field optional, `deny_unknown_fields`) and turns it into its config in
//! `XxxConfig::from_table`; collectors without tunables take no key ([`none`]).
//! Invariants:
//!
//! - an empty table gives exactly the collector's defaults;
//! - an unknown key is refused, naming it and every key the table allows;
//! - a bad value is refused, naming the key and what was expected; a bad regular
//!   expression names the key and the regex error.
//!
//! Messages are `unknown setting `KEY` for collector NAME (allowed: ...)` and
//! `bad setting `KEY` for collector NAME: ...`; the agent adds the file and line.
//!
//! Patterns are node_exporter's: unanchored regular expressions, an empty string
//! meaning no pattern. Where a collector has a default exclusion, an include pattern
//! given alone replaces it, as node_exporter's `--collector.*.device-include` does.

use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};

use crate::filter::NameFilter;

/// The keys of a `[collectors.NAME]` table that the agent reads itself; it never
/// passes them on, and no collector's settings may use them.
pub(crate) const AGENT_KEYS: [&str; 4] = ["enabled", "tier", "interval", "timeout"];

/// Reads `table` into `T`, with this module's messages. `T` must be a plain struct
/// (no `flatten`): its field names are the keys allowed.
pub(crate) fn parse<T: DeserializeOwned>(
    collector: &str,
    table: &toml::Table,
) -> Result<T, String> {
    let allowed = field_names::<T>();
    // Key by key first, so that an error names its key whatever serde's message says.
    for (key, value) in table {
        if !allowed.contains(&key.as_str()) {
            return Err(unknown(collector, key, allowed));
        }
        let mut one = toml::Table::new();
        one.insert(key.clone(), value.clone());
        one.try_into::<T>()
            .map_err(|error| bad(collector, key, error.message()))?;
    }
    table
        .clone()
        .try_into::<T>()
        .map_err(|error| format!("settings of collector {collector}: {}", error.message()))
}

/// Refuses any key: for collectors without tunables.
pub(crate) fn none(collector: &str, table: &toml::Table) -> Result<(), String> {
    match table.keys().next() {
        Some(key) => Err(unknown(collector, key, &[])),
        None => Ok(()),
    }
}

/// The message for a key the collector does not take.
fn unknown(collector: &str, key: &str, allowed: &[&str]) -> String {
    let all: Vec<&str> = allowed.iter().chain(&AGENT_KEYS).copied().collect();
    format!(
        "unknown setting `{key}` for collector {collector} (allowed: {})",
        all.join(", ")
    )
}

/// The message for a key whose value is wrong.
pub(crate) fn bad(collector: &str, key: &str, why: impl fmt::Display) -> String {
    format!("bad setting `{key}` for collector {collector}: {why}")
}

/// The fields of the struct `T` deserializes as: serde passes them to
/// `deserialize_struct`, which this deserializer records and then gives up.
fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Introspect<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Introspect<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // The error is the point: the fields are recorded before it.
    let _ = T::deserialize(Introspect(&mut fields));
    fields
}

/// A node_exporter-style regular expression; `""` means none.
#[derive(Debug, Clone)]
pub(crate) struct Pattern(Option<Regex>);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatternVisitor;

        impl Visitor<'_> for PatternVisitor {
            type Value = Pattern;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a regular expression in a string (\"\" for none)")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Pattern, E> {
                if text.is_empty() {
                    return Ok(Pattern(None));
                }
                Regex::new(text)
                    .map(|re| Pattern(Some(re)))
                    .map_err(|error| E::custom(format!("invalid regular expression: {error}")))
            }
        }

        deserializer.deserialize_str(PatternVisitor)
    }
}

/// A filter from optional include and exclude settings, or `default` when neither is
/// given. An include given alone replaces the default (node_exporter's rule: asking for
/// `sda1` by name should not be undone by a default that drops partitions).
pub(crate) fn filter(
    include: Option<Pattern>,
    exclude: Option<Pattern>,
    default: NameFilter,
) -> NameFilter {
    if include.is_none() && exclude.is_none() {
        return default;
    }
    NameFilter::from_regexes(include.and_then(|p| p.0), exclude.and_then(|p| p.0))
}

/// A filter from one include pattern (the `fields` settings), or `default`.
pub(crate) fn include_only(include: Option<Pattern>, default: NameFilter) -> NameFilter {
    match include {
        Some(pattern) => NameFilter::from_regexes(pattern.0, None),
        None => default,
    }
}

/// A human duration, `"500ms"`, `"5s"`, `"1h30m"`, read as everywhere in `agent.toml`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"5s\" or \"1m30s\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                sysward_proto::units::parse_duration(text)
                    .map(HumanDuration)
                    .map_err(E::custom)
            }
        }

        deserializer.deserialize_str(DurationVisitor)
    }
}

/// A duration setting that must be more than zero.
pub(crate) fn positive(
    collector: &str,
    key: &str,
    value: Option<HumanDuration>,
    default: Duration,
) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(HumanDuration(d)) if d.is_zero() => {
            Err(bad(collector, key, "must be more than 0 (e.g. \"5s\")"))
        }
        Some(HumanDuration(d)) => Ok(d),
    }
}

/// A human size, `"64KiB"`, `"10MiB"`, read as everywhere in `agent.toml`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HumanSize(pub(crate) u64);

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = HumanSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64KiB\" or \"10MiB\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanSize, E> {
                sysward_proto::units::parse_size(text)
                    .map(HumanSize)
                    .map_err(E::custom)
            }
        }

        deserializer.deserialize_str(SizeVisitor)
    }
}

/// A count: a whole number, at least 0.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Count(pub(crate) u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;

        impl Visitor<'_> for CountVisitor {
            type Value = Count;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number, 0 or more")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count(n))
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                u64::try_from(n)
                    .map(Count)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
            }
        }

        deserializer.deserialize_u64(CountVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).expect("valid TOML")
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Example {
        pattern: Option<Pattern>,
        wait: Option<HumanDuration>,
        count: Option<Count>,
        flag: Option<bool>,
    }

    #[test]
    fn field_names_are_read_from_the_derived_impl() {
        assert_eq!(
            field_names::<Example>(),
            ["pattern", "wait", "count", "flag"]
        );
    }

    #[test]
    fn an_empty_table_sets_nothing() {
        let example: Example = parse("x", &toml::Table::new()).expect("parses");
        assert!(example.pattern.is_none() && example.wait.is_none());
        assert!(example.count.is_none() && example.flag.is_none());
    }

    #[test]
    fn values_are_read() {
        let example: Example = parse(
            "x",
            &table("pattern = \"^a\"\nwait = \"1m30s\"\ncount = 3\nflag = true"),
        )
        .expect("parses");
        let regex = example.pattern.and_then(|p| p.0).expect("a pattern");
        assert_eq!(regex.as_str(), "^a");
        assert_eq!(example.wait.map(|w| w.0), Some(Duration::from_secs(90)));
        assert_eq!(example.count.map(|c| c.0), Some(3));
        assert_eq!(example.flag, Some(true));
        let empty: Example = parse("x", &table("pattern = \"\"")).expect("parses");
        assert!(empty.pattern.expect("set").0.is_none());
    }

    #[test]
    fn an_unknown_key_is_named_with_the_allowed_ones() {
        let error = parse::<Example>("x", &table("patern = \"a\"")).expect_err("unknown");
        assert_eq!(
            error,
            "unknown setting `patern` for collector x (allowed: pattern, wait, count, flag, \
             enabled, tier, interval, timeout)"
        );
        let error = none("cpu", &table("top = 1")).expect_err("no settings");
        assert_eq!(
            error,
            "unknown setting `top` for collector cpu (allowed: enabled, tier, interval, timeout)"
        );
        assert_eq!(none("cpu", &toml::Table::new()), Ok(()));
    }

    #[test]
    fn a_bad_value_names_its_key_and_what_was_expected() {
        let cases = [
            (
                "count = \"ten\"",
                "bad setting `count` for collector x: invalid type: string \"ten\", \
                 expected a whole number, 0 or more",
            ),
            (
                "count = -1",
                "bad setting `count` for collector x: invalid value: integer `-1`, \
                 expected a whole number, 0 or more",
            ),
            (
                "wait = 5",
                "bad setting `wait` for collector x: invalid type: integer `5`, \
                 expected a duration such as \"5s\" or \"1m30s\"",
            ),
            (
                "wait = \"5\"",
                "bad setting `wait` for collector x: \"5\" has no unit (use ms, s, m, h, d, w or y)",
            ),
            (
                "pattern = [\"a\"]",
                "bad setting `pattern` for collector x: invalid type: sequence, \
                 expected a regular expression in a string (\"\" for none)",
            ),
            (
                "flag = \"yes\"",
                "bad setting `flag` for collector x: invalid type: string \"yes\", expected a boolean",
            ),
        ];
        for (text, expected) in cases {
            let error = parse::<Example>("x", &table(text)).expect_err(text);
            assert_eq!(error, expected, "{text}");
        }
    }

    #[test]
    fn a_bad_regex_names_its_key_and_the_regex_error() {
        let error = parse::<Example>("x", &table("pattern = \"(\"")).expect_err("bad regex");
        assert!(
            error.starts_with(
                "bad setting `pattern` for collector x: invalid regular expression: regex parse error"
            ),
            "{error}"
        );
        assert!(error.contains("unclosed group"), "{error}");
    }

    #[test]
    fn an_include_alone_replaces_the_default_exclusion() {
        let default = NameFilter::exclude("^loop").expect("compiles");
        let pattern = |text: &str| Some(Pattern(Some(Regex::new(text).expect("compiles"))));
        let kept = filter(None, None, default.clone());
        assert!(!kept.passes("loop0"));
        let include = filter(pattern("^loop0$"), None, default.clone());
        assert!(include.passes("loop0") && !include.passes("sda"));
        let both = filter(pattern("^(loop|sd)"), pattern("^sdb"), default.clone());
        assert!(both.passes("loop0") && both.passes("sda") && !both.passes("sdb"));
        let no_exclusion = filter(None, Some(Pattern(None)), default);
        assert!(no_exclusion.passes("loop0"));
        let fields = include_only(Some(Pattern(None)), NameFilter::include("^a").expect("ok"));
        assert!(fields.passes("b"));
    }

    #[test]
    fn positive_durations_refuse_zero() {
        let zero = Some(HumanDuration(Duration::ZERO));
        assert_eq!(
            positive("x", "wait", zero, Duration::from_secs(1)),
            Err("bad setting `wait` for collector x: must be more than 0 (e.g. \"5s\")".into())
        );
        assert_eq!(
            positive("x", "wait", None, Duration::from_secs(1)),
            Ok(Duration::from_secs(1))
        );
    }
}
