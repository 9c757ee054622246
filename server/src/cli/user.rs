//! `sysward-server user add|list|remove|passwd`: console users (`/ui/`). A password is read
//! from the terminal without echo, twice, or as the first line of standard input when that
//! is not a terminal (`echo "$PW" | sysward-server user add ann --role viewer`); it is
//! checked ([`users::check_password`]) and only its Argon2id hash is stored.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::{format_ms, open_state};
use crate::{
    config::ServerConfig,
    users::{self, UserRole},
};

#[derive(Subcommand)]
pub(super) enum UserCommand {
    /// Adds a user; the password is read from the terminal or standard input.
    Add {
        /// 1 to 64 ASCII letters, digits, '.', '_', '-' or '@', starting with a letter or
        /// digit.
        #[arg(value_parser = parse_name)]
        name: String,
        /// viewer (reads), editor (also acknowledges and silences) or admin (everything).
        #[arg(long, value_parser = parse_role)]
        role: UserRole,
    },
    /// Lists users: name, role, created, password changed; never a password.
    List,
    /// Removes a user and ends its sessions.
    Remove { name: String },
    /// Sets a new password (read as for `add`) and ends the user's sessions.
    Passwd { name: String },
    /// Gives a user another role, which their open sessions have at once.
    Role {
        name: String,
        #[arg(value_parser = parse_role)]
        role: UserRole,
    },
}

fn parse_role(s: &str) -> Result<UserRole, String> {
    UserRole::parse(s).ok_or_else(|| format!("{s:?} is not a role: viewer, editor or admin"))
}

fn parse_name(s: &str) -> Result<String, String> {
    users::check_name(s).map(|()| s.to_string())
}

pub(super) fn run(config: &ServerConfig, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { name, role } => {
            let state = open_state(config)?;
            if state.user_credentials(&name)?.is_some() {
                bail!("a user named {name:?} exists already");
            }
            let hash = new_password_hash(&name)?;
            state
                .add_user(&name, role, &hash)
                .with_context(|| format!("cannot add user {name:?}"))?;
            println!("added user {name:?} ({})", role.as_str());
        }
        UserCommand::List => {
            let state = open_state(config)?;
            println!(
                "{:<32} {:<7} {:<21} PASSWORD CHANGED",
                "NAME", "ROLE", "CREATED"
            );
            for u in state.list_users()? {
                println!(
                    "{:<32} {:<7} {:<21} {}",
                    u.name,
                    u.role.as_str(),
                    format_ms(u.created_ms),
                    format_ms(u.password_changed_ms)
                );
            }
        }
        UserCommand::Remove { name } => {
            let state = open_state(config)?;
            if let Err(e) = state.remove_user(&name) {
                bail!("cannot remove: {e}");
            }
            println!("removed user {name:?} and ended its sessions");
        }
        UserCommand::Passwd { name } => {
            let state = open_state(config)?;
            if state.user_credentials(&name)?.is_none() {
                bail!("no user named {name:?}");
            }
            let hash = new_password_hash(&name)?;
            if let Err(e) = state.set_password(&name, &hash) {
                bail!("cannot set the password: {e}");
            }
            println!("changed the password of {name:?} and ended its sessions");
        }
        UserCommand::Role { name, role } => {
            let state = open_state(config)?;
            if let Err(e) = state.set_role(&name, role) {
                bail!("cannot change the role: {e}");
            }
            println!("{name:?} is now {}", role.as_str());
        }
    }
    Ok(())
}

/// Reads, checks and hashes a new password for `name`.
fn new_password_hash(name: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt(&format!("Password for {name}: "))?;
        users::check_password(&first).map_err(|e| anyhow::anyhow!("refused: {e}"))?;
        let again = prompt("The same again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        strip_newline(line)
    };
    users::check_password(&password).map_err(|e| anyhow::anyhow!("refused: {e}"))?;
    users::hash_password(&password).map_err(Into::into)
}

/// A line without its end (`\n` or `\r\n`); other white space is part of the password.
fn strip_newline(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// Asks on standard error and reads a line from the terminal with echo off.
fn prompt(text: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("cannot read the terminal's settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{text}");
    std::io::stderr().flush().ok();
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &quiet).context("cannot turn echo off")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Echo back on whatever the read did.
    tcsetattr(&stdin, SetArg::TCSAFLUSH, &saved).context("cannot turn echo on again")?;
    read.context("cannot read the password")?;
    Ok(strip_newline(line))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        assert_eq!(parse_role("editor"), Ok(UserRole::Editor));
        assert!(
            parse_role("read")
                .unwrap_err()
                .contains("viewer, editor or admin")
        );
        assert!(parse_name("ann").is_ok());
        assert!(parse_name("a b").is_err() && parse_name("").is_err());
    }

    #[test]
    fn only_the_line_end_is_stripped() {
        assert_eq!(strip_newline("pw\n".into()), "pw");
        assert_eq!(strip_newline("pw\r\n".into()), "pw");
        assert_eq!(strip_newline(" pw ".into()), " pw ");
        assert_eq!(strip_newline("pw".into()), "pw");
    }
}
