//! Host and port as operators write them in configs and URLs: `host:port`,
//! `[v6]:port`, a bare host or a bare IPv6 address.

/// Splits `host:port`, `[v6]:port`, or a bare host (or bare IPv6 address) with
/// `default_port`.
pub fn split_host_port(text: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let text = text.trim();
    let need_port =
        || default_port.ok_or_else(|| format!("{text:?} has no port (expected host:port)"));
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: missing ']'"))?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{text:?}: {host:?} is not an IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(text, p)?,
            None if after.is_empty() => need_port()?,
            None => return Err(format!("{text:?}: unexpected {after:?} after ']'")),
        };
        return Ok((host.to_string(), port));
    }
    if text.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok((text.to_string(), need_port()?));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(text, port)?),
        None => (text, need_port()?),
    };
    check_host(host).map_err(|e| format!("{text:?}: {e}"))?;
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(whole: &str, port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("{whole:?}: {port:?} is not a port (1-65535)")),
    }
}

/// A host name or IPv4 address: letters, digits, `-`, `_` and `.`, at most 253 bytes.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.len() > 253 {
        return Err("host name longer than 253 bytes".into());
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!("{host:?} is not a host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_forms() {
        assert_eq!(
            split_host_port("example.com:443", None),
            Ok(("example.com".into(), 443))
        );
        assert_eq!(
            split_host_port("Example.COM", Some(443)),
            Ok(("example.com".into(), 443))
        );
        assert_eq!(
            split_host_port("[::1]:8443", None),
            Ok(("::1".into(), 8443))
        );
        assert_eq!(split_host_port("::1", Some(53)), Ok(("::1".into(), 53)));
        assert_eq!(
            split_host_port("10.0.0.1:53", None),
            Ok(("10.0.0.1".into(), 53))
        );
        assert!(split_host_port("example.com", None).is_err());
        assert!(split_host_port("example.com:0", None).is_err());
        assert!(split_host_port("example.com:http", None).is_err());
        assert!(split_host_port("exa mple.com:80", None).is_err());
        assert!(split_host_port("[::1", None).is_err());
        assert!(split_host_port(":80", None).is_err());
    }
}
