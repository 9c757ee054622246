//! Secrets of channel settings (passwords, tokens, webhook URLs with keys): never printed,
//! logged or serialized.

use std::{fmt, path::Path};

use serde::{Deserialize, Deserializer};

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a `*_file` setting: the file's text without its trailing line break.
    pub fn from_file(path: &Path) -> Result<Secret, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value = text.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        Ok(Secret(value.to_string()))
    }

    /// The setting given inline or as a file: exactly one of them, or neither when
    /// `required` is false. `name` is the inline key's name, for the error.
    pub fn pick(
        inline: Option<Secret>,
        file: Option<&Path>,
        name: &str,
        required: bool,
    ) -> Result<Option<Secret>, String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!("give either {name} or {name}_file, not both")),
            (Some(s), None) if s.0.is_empty() => Err(format!("{name} is empty")),
            (Some(s), None) => Ok(Some(s)),
            (None, Some(path)) => Secret::from_file(path).map(Some),
            (None, None) if required => Err(format!("{name} or {name}_file is required")),
            (None, None) => Ok(None),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}
