//! Include and exclude patterns for names (devices, mount points, chips, fields), with
//! node_exporter's semantics, so that its defaults and flags carry over unchanged.

use regex::Regex;

/// Which names pass: those matching `include` (when set) and not matching `exclude`
/// (when set). Patterns are unanchored, as in node_exporter; defaults anchor themselves.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Option<Regex>,
    exclude: Option<Regex>,
    /// Set only when a built-in include pattern failed to compile.
    nothing: bool,
}

impl NameFilter {
    /// Passes every name.
    pub fn all() -> Self {
        Self::default()
    }

    /// Passes names that do not match `pattern`.
    pub fn exclude(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            exclude: Some(Regex::new(pattern)?),
            ..Self::default()
        })
    }

    /// Passes only names that match `pattern`.
    pub fn include(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            include: Some(Regex::new(pattern)?),
            ..Self::default()
        })
    }

    /// Passes names matching `include` (when given) and not matching `exclude` (when
    /// given): the settings' patterns, already compiled.
    pub(crate) fn from_regexes(include: Option<Regex>, exclude: Option<Regex>) -> Self {
        Self {
            include,
            exclude,
            nothing: false,
        }
    }

    /// Whether `name` passes.
    pub fn passes(&self, name: &str) -> bool {
        !self.nothing
            && self.include.as_ref().is_none_or(|re| re.is_match(name))
            && !self.exclude.as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// A filter from one of the collectors' built-in patterns, which are tested to compile
/// (see each collector's tests); should one not, nothing is filtered rather than the
/// collector failing.
pub(crate) fn builtin_exclude(pattern: &str) -> NameFilter {
    NameFilter::exclude(pattern).unwrap_or_default()
}

/// A filter from one of the collectors' built-in include patterns; should one not
/// compile, nothing passes, since sending everything could be far more than wanted.
pub(crate) fn builtin_include(pattern: &str) -> NameFilter {
    NameFilter::include(pattern).unwrap_or(NameFilter {
        nothing: true,
        ..NameFilter::default()
    })
}

/// Whether `name` can be a Prometheus metric name (or a part of one after a valid
/// prefix): ASCII letters, digits and underscores. Names from files are checked before
/// they become metric names.
pub(crate) fn is_metric_name_part(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude_are_unanchored_like_node_exporters() {
        let all = NameFilter::all();
        assert!(all.passes("anything"));
        let exclude = NameFilter::exclude("loop").expect("compiles");
        assert!(!exclude.passes("loop0"));
        assert!(exclude.passes("sda"));
        let include = NameFilter::include("(coretemp|nct)").expect("compiles");
        assert!(include.passes("platform_coretemp_0"));
        assert!(!include.passes("acpitz"));
        assert!(NameFilter::exclude("(").is_err());
        assert!(builtin_exclude("(").passes("x"));
        assert!(!builtin_include("(").passes("x"));
    }

    #[test]
    fn metric_name_parts_are_checked() {
        assert!(is_metric_name_part("TcpExt_ListenDrops"));
        assert!(!is_metric_name_part(""));
        assert!(!is_metric_name_part("a-b"));
        assert!(!is_metric_name_part("a b"));
    }
}
