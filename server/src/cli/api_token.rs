//! `sysward-server api-token create|list|revoke`: tokens for dashboards and scripts, apart
//! from agents' join tokens. The secret is printed once by `create`; only its hash is
//! stored (`state.db`, table `api_tokens`), so `list` can never show it.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use sysward_proto::units;

use super::{format_ms, open_state};
use crate::{config::ServerConfig, state::Role};

#[derive(Subcommand)]
pub(super) enum ApiTokenCommand {
    /// Makes a token and prints its secret once.
    Create {
        /// read (the query APIs), write (remote write in) or admin (read and the admin
        /// endpoints).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name to list and revoke it by: letters, digits, '.', '_' and '-'.
        #[arg(long, value_parser = parse_name)]
        name: String,
        /// How long it stays valid, e.g. "90d" (default: until revoked).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
    /// Lists tokens: name, role, created, expiry, last used (to the minute).
    List,
    /// Deletes a token; requests with it are refused from then on.
    Revoke { name: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role: read, write or admin"))
}

fn parse_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?}: a name is 1 to 64 letters, digits, '.', '_' or '-'"
        ))
    }
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let ttl = units::parse_duration(s)?;
    if ttl.is_zero() {
        return Err("a token's ttl must be longer than 0".into());
    }
    Ok(ttl)
}

pub(super) fn run(config: &ServerConfig, command: ApiTokenCommand) -> anyhow::Result<()> {
    let state = open_state(config)?;
    match command {
        ApiTokenCommand::Create { role, name, ttl } => {
            let secret = state
                .create_api_token(&name, role, ttl)
                .with_context(|| format!("cannot create API token {name:?}"))?;
            // The secret alone on stdout, for scripts; the warning beside it.
            eprintln!("API token {name:?} ({}), shown once:", role.as_str());
            println!("{secret}");
        }
        ApiTokenCommand::List => {
            println!(
                "{:<24} {:<6} {:<21} {:<21} LAST USED",
                "NAME", "ROLE", "CREATED", "EXPIRES"
            );
            for t in state.list_api_tokens()? {
                let expires = t.expires_ms.map_or_else(|| "never".into(), format_ms);
                let used = t.last_used_ms.map_or_else(|| "never".into(), format_ms);
                println!(
                    "{:<24} {:<6} {:<21} {:<21} {used}",
                    t.name,
                    t.role.as_str(),
                    format_ms(t.created_ms),
                    expires
                );
            }
        }
        ApiTokenCommand::Revoke { name } => {
            if let Err(e) = state.revoke_api_token(&name) {
                bail!("cannot revoke: {e}");
            }
            println!("revoked API token {name:?}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        assert_eq!(parse_role("read"), Ok(Role::Read));
        assert!(
            parse_role("root")
                .unwrap_err()
                .contains("read, write or admin")
        );
        assert!(parse_name("grafana-1.prod_x").is_ok());
        assert!(parse_name("").is_err() && parse_name("a b").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_ttl("0s").is_err() && parse_ttl("soon").is_err());
    }
}
