//! The documentation against the code.
//!
//! - Every ```toml block of `docs/configuration.md` marked as a full example
//!   (`<!-- full example: agent.toml -->` or `<!-- full example: server.toml -->` on the
//!   line before it) is accepted by the real parser: the binary's own `check-config`. (Both
//!   config modules are private to their binaries, so the binaries are the way to reach
//!   them; build them first with `cargo build --bins`, as `scripts/test` does.)
//! - Every key of the shipped example configs `packaging/agent.toml` and
//!   `packaging/server.toml`, commented-out keys included, is named in
//!   `docs/configuration.md`, and so is every table they open.
//! - The ```toml samples of `docs/checks.md`, together in one agent config, pass the
//!   agent's `check-config` (which builds every check).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use sysward_tests::bin;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The blocks marked `<!-- full example: NAME -->`, with the line their text starts on.
fn full_examples(doc: &str, name: &str) -> Vec<(usize, String)> {
    let marker = format!("<!-- full example: {name} -->");
    let lines: Vec<&str> = doc.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != marker {
            continue;
        }
        let fence = lines.get(i + 1).map(|l| l.trim());
        assert_eq!(
            fence,
            Some("```toml"),
            "docs/configuration.md:{}: {marker} must be followed by a ```toml block",
            i + 1
        );
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| l.trim() != "```")
            .copied()
            .collect();
        assert!(
            i + 2 + body.len() < lines.len(),
            "docs/configuration.md:{}: the block after {marker} is not closed",
            i + 2
        );
        found.push((i + 3, body.join("\n") + "\n"));
    }
    found
}

/// Runs `binary --config FILE check-config` on `text`; the output when it is refused.
fn check_config(binary: &str, text: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("example.toml");
    fs::write(&file, text).unwrap();
    let out = Command::new(bin(binary))
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn full_examples_pass(name: &str, binary: &str) {
    let doc = read("docs/configuration.md");
    let examples = full_examples(&doc, name);
    assert!(
        !examples.is_empty(),
        "docs/configuration.md has no block marked <!-- full example: {name} -->"
    );
    for (line, text) in examples {
        if let Err(e) = check_config(binary, &text) {
            panic!(
                "the {name} example at docs/configuration.md:{line} is refused by {binary}: {e}"
            );
        }
    }
}

#[test]
fn the_full_agent_example_is_accepted_by_the_agent() {
    full_examples_pass("agent.toml", "sysward-agent");
}

#[test]
fn the_full_server_example_is_accepted_by_the_server() {
    full_examples_pass("server.toml", "sysward-server");
}

/// Every ```toml block of `doc`.
fn toml_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in doc.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(Vec::new()),
            (Some(body), "```") => {
                blocks.push(body.join("\n") + "\n");
                current = None;
            }
            (Some(body), _) => body.push(line),
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "a ```toml block is not closed");
    blocks
}

#[test]
fn the_check_samples_are_accepted_by_the_agent() {
    let blocks = toml_blocks(&read("docs/checks.md"));
    assert!(
        blocks.len() >= 8,
        "docs/checks.md: one sample per check kind"
    );
    // A script check's program must exist and be trusted: a system program stands in for
    // the sample's.
    let text = format!(
        "[server]\nurl = \"https://mon.example:8443\"\n\n{}",
        blocks.join("\n")
    )
    .replace("/usr/local/lib/sysward/check_backup", "/bin/true");
    if let Err(e) = check_config("sysward-agent", &text) {
        panic!("the samples of docs/checks.md are refused by sysward-agent: {e}\n{text}");
    }
}

/// A table header (`[a.b]`, `[[a.b]]`) or a key (`name = ...`) of a TOML line, read
/// through a leading `#`: commented-out keys are keys of the example too.
enum Item {
    Table(String),
    Key(String),
}

fn item(line: &str) -> Option<Item> {
    let line = line.trim_start().trim_start_matches('#').trim();
    if let Some(rest) = line.strip_prefix('[') {
        let name = rest.trim_start_matches('[');
        let end = name.find(']')?;
        let name = name[..end].trim();
        let is_table = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        return is_table.then(|| Item::Table(name.to_string()));
    }
    let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))?;
    let (key, rest) = line.split_at(end);
    (!key.is_empty() && rest.trim_start().starts_with('=')).then(|| Item::Key(key.to_string()))
}

/// Whether the doc names `key`: in backticks, or as a key of one of its TOML lines.
fn names_key(doc: &str, key: &str) -> bool {
    doc.contains(&format!("`{key}`"))
        || doc
            .lines()
            .any(|l| matches!(item(l), Some(Item::Key(k)) if k == key))
}

fn every_key_is_documented(example: &str) {
    let doc = read("docs/configuration.md");
    let text = read(example);
    let mut table = String::new();
    let mut missing = Vec::new();
    let mut keys = 0;
    for (n, line) in text.lines().enumerate() {
        match item(line) {
            Some(Item::Table(name)) => {
                if !doc.contains(&format!("[{name}]")) {
                    missing.push(format!("table [{name}] ({example}:{})", n + 1));
                }
                table = name;
            }
            Some(Item::Key(key)) => {
                keys += 1;
                if !names_key(&doc, &key) {
                    missing.push(format!("key `{key}` of [{table}] ({example}:{})", n + 1));
                }
            }
            None => {}
        }
    }
    assert!(
        keys >= 10,
        "{example}: only {keys} keys found; is it read right?"
    );
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_key_of_the_shipped_agent_config_is_documented() {
    every_key_is_documented("packaging/agent.toml");
}

#[test]
fn every_key_of_the_shipped_server_config_is_documented() {
    every_key_is_documented("packaging/server.toml");
}

#[test]
fn keys_are_read_through_comments() {
    assert!(matches!(item("# hostname = \"web-1\"  # x"), Some(Item::Key(k)) if k == "hostname"));
    assert!(matches!(item("  max_body = \"4MiB\""), Some(Item::Key(k)) if k == "max_body"));
    assert!(
        matches!(item("# [agent.labels]   # sent"), Some(Item::Table(t)) if t == "agent.labels")
    );
    assert!(matches!(item("[[checks.script]]"), Some(Item::Table(t)) if t == "checks.script"));
    assert!(item("# Getting started: on the server,").is_none());
    assert!(item("#     sudo sysward-agent enroll 'swjoin1.…'").is_none());
}
