//! SMS through Twilio's Programmable Messaging, as Twilio documents its Message resource:
//! `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic authentication
//! (account SID and auth token) and a form body of `To`, `From` (or
//! `MessagingServiceSid`) and `Body`, one request per recipient. Twilio answers 201 with the
//! message as JSON (`sid`, `status`).
//!
//! The text keeps to one SMS segment where it can: 160 characters of the GSM 03.38 alphabet.
//! A single character outside it makes the whole message UCS-2, with 70 characters a
//! segment, so others are replaced by their nearest GSM look-alike or `?`.

use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

use crate::{
    AlertInfo, Context, Event, Notification, SendError, Status,
    http::{self, HttpRequest},
    receiver::{Channel, SendFuture},
    secret::Secret,
};

/// Twilio's API.
pub const DEFAULT_API_URL: &str = "https://api.twilio.com";

/// One GSM-7 segment, in septets.
const SEGMENT: usize = 160;

/// GSM 03.38's basic character set, one septet each (ESC aside).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// Its extension table: two septets each (an escape, then the character).
const GSM_EXTENDED: &str = "^{}\\[~]|€\u{c}";

/// `[[notify.receivers.sms]]`: a Twilio account and the numbers to text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The account's SID, `AC` and 32 hexadecimal digits.
    pub account_sid: String,
    /// The account's auth token.
    #[serde(default)]
    pub auth_token: Option<Secret>,
    /// A file holding the auth token, instead of `auth_token`.
    #[serde(default)]
    pub auth_token_file: Option<PathBuf>,
    /// The sending number (E.164) or alphanumeric sender ID; or else:
    #[serde(default)]
    pub from: Option<String>,
    /// A messaging service that picks the sender, `MG` and 32 hexadecimal digits.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// The numbers to text, in E.164 (`+` and the country code).
    pub to: Vec<String>,
    /// The API's base URL (a proxy, or a test server).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// The token `prepare` settled on, from either setting.
    #[serde(skip)]
    token: Option<Secret>,
}

fn default_api_url() -> String {
    DEFAULT_API_URL.to_string()
}

impl Channel for SmsConfig {
    fn kind(&self) -> &'static str {
        "sms"
    }

    fn prepare(&mut self) -> Result<(), String> {
        let token = Secret::pick(
            self.auth_token.clone(),
            self.auth_token_file.as_deref(),
            "auth_token",
            true,
        )?;
        check_sid("account_sid", &self.account_sid, "AC")?;
        match (&self.from, &self.messaging_service_sid) {
            (Some(from), None) => check_sender(from)?,
            (None, Some(sid)) => check_sid("messaging_service_sid", sid, "MG")?,
            _ => return Err("give either from or messaging_service_sid".to_string()),
        }
        if self.to.is_empty() {
            return Err("to needs at least one number".to_string());
        }
        if let Some(bad) = self.to.iter().find(|n| !is_e164(n)) {
            return Err(format!(
                "to: {bad:?} is not an E.164 number like +14155550100"
            ));
        }
        crate::webhook::check_url(&self.api_url, "api_url")?;
        self.api_url = self.api_url.trim_end_matches('/').to_string();
        self.token = token;
        Ok(())
    }

    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let token = self.token.as_ref().ok_or_else(not_prepared)?;
            let body = render(n);
            let mut first_error = None;
            let mut last = None;
            // One message per number: a failure for one must not keep the others from
            // their page. A retry texts them all again: Twilio has no idempotency key.
            for to in &self.to {
                match http::send(ctx, &self.request(token, to, &body)).await {
                    Ok(d) => last = Some(d),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match (first_error, last) {
                (Some(e), _) => Err(e),
                (None, Some(d)) => Ok(d),
                (None, None) => Err(not_prepared()),
            }
        })
    }
}

impl SmsConfig {
    fn request(&self, token: &Secret, to: &str, body: &str) -> HttpRequest {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("To", to);
        match (&self.from, &self.messaging_service_sid) {
            (Some(from), _) => form.append_pair("From", from),
            (None, Some(sid)) => form.append_pair("MessagingServiceSid", sid),
            (None, None) => &mut form,
        };
        form.append_pair("Body", body);
        let credentials = format!("{}:{}", self.account_sid, token.expose());
        let basic = base64::engine::general_purpose::STANDARD.encode(credentials);
        HttpRequest {
            method: reqwest::Method::POST,
            url: format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.api_url, self.account_sid
            ),
            headers: vec![("Authorization".to_string(), format!("Basic {basic}"))],
            content_type: "application/x-www-form-urlencoded".into(),
            body: form.finish().into_bytes(),
        }
    }
}

/// The text: e.g. `FIRING web-1 HighCpu: CPU at 97% +2 more`, within one GSM-7 segment
/// where it can be, with the acknowledgement link only when it still fits. An operator's
/// title template replaces the headline: an SMS is a title's length.
pub fn render(n: &Notification) -> String {
    let main = match &n.custom.title {
        Some(title) => to_gsm(title),
        None => to_gsm(&headline(n)),
    };
    let more = match others(n) {
        0 => String::new(),
        k => format!(" +{k} more"),
    };
    let room = SEGMENT.saturating_sub(septets(&more));
    let mut text = format!("{}{more}", cut_septets(&main, room));
    let used = septets(&text);
    if let Some(url) = ack_link(n).filter(|url| used + 1 + septets(url) <= SEGMENT) {
        text.push(' ');
        text.push_str(url);
    }
    text
}

/// `FIRING web-1 HighCpu: CPU at 97%`, for the first alert the news is about.
fn headline(n: &Notification) -> String {
    let head = match (&n.event, n.status) {
        (Event::Test, _) => "TEST".to_string(),
        (Event::Acknowledged { by }, _) => format!("ACK by {by}:"),
        (Event::Flapping, _) => "FLAPPING".to_string(),
        (Event::Escalated { step }, _) => format!("ESCALATED {step} FIRING"),
        (_, Status::Firing) => "FIRING".to_string(),
        (_, Status::Resolved) => "RESOLVED".to_string(),
    };
    let Some(a) = lead(n) else {
        return head;
    };
    let mut out = head;
    if let Some(host) = a.host() {
        out.push(' ');
        out.push_str(host);
    }
    out.push(' ');
    out.push_str(a.alertname());
    if a.summary() != a.alertname() {
        out.push_str(": ");
        out.push_str(a.summary());
    }
    out
}

/// The alert the text names: the first firing one, else the first one.
fn lead(n: &Notification) -> Option<&AlertInfo> {
    n.firing().next().or_else(|| n.alerts.first())
}

/// How many alerts of the same status the text leaves unnamed.
fn others(n: &Notification) -> usize {
    let Some(a) = lead(n) else {
        return 0;
    };
    let same = n.alerts.iter().filter(|b| b.status == a.status).count();
    same.saturating_sub(1)
}

/// The link that acknowledges the group: while it fires and is not acknowledged yet, and
/// only when every character of it survives GSM-7 as it is.
fn ack_link(n: &Notification) -> Option<&str> {
    let firing = n.status == Status::Firing && !matches!(n.event, Event::Acknowledged { .. });
    n.ack_url
        .as_deref()
        .filter(|url| firing && url.chars().all(|c| gsm_septets(c).is_some()))
}

/// The text in GSM-7: look-alikes for common typography, `?` for the rest, and one line.
pub fn to_gsm(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if gsm_septets(c).is_some() && !matches!(c, '\n' | '\r' | '\u{c}') {
            out.push(c);
            continue;
        }
        match look_alike(c) {
            Some(s) => out.push_str(s),
            None => out.push('?'),
        }
    }
    out
}

fn look_alike(c: char) -> Option<&'static str> {
    Some(match c {
        '\n' | '\r' | '\t' | '\u{c}' | '\u{a0}' | '\u{2002}'..='\u{200a}' | '\u{202f}' => " ",
        '\u{200b}' | '\u{200d}' | '\u{feff}' => "",
        '‘' | '’' | '‚' | '′' | '`' | '´' => "'",
        '“' | '”' | '„' | '″' | '«' | '»' => "\"",
        '‐' | '‑' | '‒' | '–' | '—' | '−' => "-",
        '…' => "...",
        '•' | '·' => "*",
        '×' => "x",
        '°' => "deg",
        'µ' => "u",
        'á' | 'â' | 'ã' | 'ā' | 'ą' => "a",
        'Á' | 'Â' | 'À' | 'Ã' | 'Ā' | 'Ą' => "A",
        'ç' | 'ć' | 'č' => "c",
        'Ć' | 'Č' => "C",
        'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'È' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'í' | 'î' | 'ï' | 'ı' => "i",
        'Í' | 'Ì' | 'Î' | 'Ï' => "I",
        'ó' | 'ô' | 'õ' | 'ő' => "o",
        'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ő' => "O",
        'ú' | 'û' | 'ű' | 'ů' => "u",
        'Ú' | 'Ù' | 'Û' | 'Ű' | 'Ů' => "U",
        'ý' | 'ÿ' => "y",
        'Ý' => "Y",
        'ł' => "l",
        'Ł' => "L",
        'ń' | 'ň' => "n",
        'Ń' | 'Ň' => "N",
        'ř' => "r",
        'Ř' => "R",
        'ś' | 'š' => "s",
        'Ś' | 'Š' => "S",
        'ť' => "t",
        'Ť' => "T",
        'ź' | 'ż' | 'ž' => "z",
        'Ź' | 'Ż' | 'Ž' => "Z",
        _ => return None,
    })
}

/// Septets of one character in GSM-7, or `None` when it has none.
fn gsm_septets(c: char) -> Option<usize> {
    if GSM_BASIC.contains(c) {
        Some(1)
    } else if GSM_EXTENDED.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The text's length in septets (a character outside GSM-7 counted as one `?`).
pub fn septets(text: &str) -> usize {
    text.chars().map(|c| gsm_septets(c).unwrap_or(1)).sum()
}

/// At most `max` septets, ending in `...` when cut.
fn cut_septets(text: &str, max: usize) -> String {
    if septets(text) <= max {
        return text.to_string();
    }
    let room = max.saturating_sub(3);
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = gsm_septets(c).unwrap_or(1);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    let mut out = out.trim_end().to_string();
    out.push_str("...");
    out
}

/// `+`, a country code that does not start with 0, at most 15 digits in all.
fn is_e164(number: &str) -> bool {
    let Some(digits) = number.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// A number, or an alphanumeric sender ID (1 to 11 letters, digits and spaces, one letter
/// at least) where the destination country allows one.
fn check_sender(from: &str) -> Result<(), String> {
    let alphanumeric = (1..=11).contains(&from.len())
        && from.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ')
        && from.bytes().any(|b| b.is_ascii_alphabetic());
    if is_e164(from) || alphanumeric {
        Ok(())
    } else {
        Err(format!(
            "from: {from:?} is neither an E.164 number nor an alphanumeric sender ID"
        ))
    }
}

/// Twilio's SIDs: two letters and 32 hexadecimal digits. Checked before they go into a URL.
fn check_sid(name: &str, sid: &str, prefix: &str) -> Result<(), String> {
    let ok = sid.len() == 34
        && sid.starts_with(prefix)
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name}: {sid:?} is not a SID ({prefix} and 32 hexadecimal digits)"
        ))
    }
}

fn not_prepared() -> SendError {
    SendError::Permanent("the channel was not prepared".to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alert(name: &str, host: &str, summary: &str, status: Status) -> AlertInfo {
        AlertInfo {
            fingerprint: name.to_string(),
            status,
            labels: BTreeMap::from([
                ("alertname".to_string(), name.to_string()),
                ("instance".to_string(), host.to_string()),
            ]),
            annotations: BTreeMap::from([("summary".to_string(), summary.to_string())]),
            starts_at_ms: 0,
            ends_at_ms: None,
            value: None,
            generator_url: String::new(),
        }
    }

    fn notification(event: Event, status: Status, alerts: Vec<AlertInfo>) -> Notification {
        Notification {
            id: "n".to_string(),
            group_key: "g".to_string(),
            receiver: "r".to_string(),
            event,
            status,
            alerts,
            group_labels: BTreeMap::new(),
            common_labels: BTreeMap::new(),
            common_annotations: BTreeMap::new(),
            external_url: "https://sysward.example".to_string(),
            ack_url: Some("https://sysward.example/ack/abc".to_string()),
            custom: Default::default(),
            created_ms: 0,
        }
    }

    #[test]
    fn the_gsm_tables_have_their_sizes() {
        assert_eq!(GSM_BASIC.chars().count(), 127);
        assert_eq!(GSM_EXTENDED.chars().count(), 10);
        let mut all: Vec<char> = GSM_BASIC.chars().chain(GSM_EXTENDED.chars()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 137);
    }

    #[test]
    fn firing_text_names_the_first_alert_counts_the_rest_and_links() {
        let n = notification(
            Event::Alerts,
            Status::Firing,
            vec![
                alert("HighCpu", "web-1", "CPU at 97%", Status::Firing),
                alert("HighCpu", "web-2", "CPU at 95%", Status::Firing),
                alert("HighCpu", "web-3", "CPU at 93%", Status::Firing),
                alert("Disk", "db-1", "fine again", Status::Resolved),
            ],
        );
        assert_eq!(
            render(&n),
            "FIRING web-1 HighCpu: CPU at 97% +2 more https://sysward.example/ack/abc"
        );
    }

    #[test]
    fn resolved_and_acknowledged_texts_have_no_ack_link() {
        let resolved = notification(
            Event::Alerts,
            Status::Resolved,
            vec![alert("HighCpu", "web-1", "CPU at 97%", Status::Resolved)],
        );
        assert_eq!(render(&resolved), "RESOLVED web-1 HighCpu: CPU at 97%");
        let ack = notification(
            Event::Acknowledged { by: "ann".into() },
            Status::Firing,
            vec![alert("HighCpu", "web-1", "CPU at 97%", Status::Firing)],
        );
        assert_eq!(render(&ack), "ACK by ann: web-1 HighCpu: CPU at 97%");
    }

    #[test]
    fn long_text_is_cut_to_one_segment_and_drops_the_link() {
        let summary = "Température élevée “salle 2” – ça chauffe… ".repeat(10);
        let n = notification(
            Event::Alerts,
            Status::Firing,
            vec![
                alert("Heat", "rack-4", &summary, Status::Firing),
                alert("Heat", "rack-5", "x", Status::Firing),
            ],
        );
        let text = render(&n);
        assert!(
            septets(&text) <= SEGMENT,
            "{} septets: {text}",
            septets(&text)
        );
        assert!(septets(&text) >= SEGMENT - 3, "{text}");
        assert!(text.chars().all(|c| gsm_septets(c).is_some()), "{text}");
        assert!(
            text.starts_with("FIRING rack-4 Heat: Température élevée \"salle 2\" - ca chauffe..."),
            "{text}"
        );
        assert!(text.ends_with("... +1 more"), "{text}");
        assert!(!text.contains("http"), "{text}");
    }

    #[test]
    fn extension_characters_count_twice() {
        assert_eq!(septets("a{b}€"), 8);
        assert_eq!(cut_septets("{{{{{{", 9), "{{{...");
        assert_eq!(to_gsm("tab\there\nnew—line ✓"), "tab here new-line ?");
    }

    #[test]
    fn numbers_and_sids_are_checked() {
        assert!(is_e164("+14155550100"));
        assert!(!is_e164("14155550100"));
        assert!(!is_e164("+0155"));
        assert!(!is_e164("+1415555010012345"));
        assert!(!is_e164("+1 415 555"));
        assert!(check_sender("Sysward").is_ok());
        assert!(check_sender("+4915112345678").is_ok());
        assert!(check_sender("123").is_err());
        assert!(check_sender("Sysward Alerts").is_err());
        assert!(check_sid("s", &format!("AC{}", "a".repeat(32)), "AC").is_ok());
        assert!(check_sid("s", &format!("MG{}", "a".repeat(32)), "AC").is_err());
        assert!(check_sid("s", "AC/../x", "AC").is_err());
    }
}
