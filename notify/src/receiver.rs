//! A receiver: a named list of channels, as `[[notify.receivers]]` in server.toml.

use std::{future::Future, pin::Pin};

use serde::Deserialize;

use crate::{
    Context, Delivery, Notification, SendError, alertmanager::AlertmanagerConfig,
    discord::DiscordConfig, email::EmailConfig, opsgenie::OpsgenieConfig,
    pagerduty::PagerdutyConfig, slack::SlackConfig, sms::SmsConfig, teams::TeamsConfig,
    webhook::WebhookConfig,
};

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Delivery, SendError>> + Send + 'a>>;

/// One way of reaching people: a service and its settings.
pub trait Channel: std::fmt::Debug + Send + Sync {
    /// The service: `email`, `slack`, `teams`, `discord`, `webhook`, `sms`, `pagerduty`,
    /// `opsgenie`, `alertmanager`.
    fn kind(&self) -> &'static str;

    /// Checks the settings and reads `*_file` secrets; the error says which key and why.
    fn prepare(&mut self) -> Result<(), String>;

    /// Sends one notification. A channel that needs several requests for it (one event per
    /// alert) reports the first failure, after sending what it could.
    fn send<'a>(&'a self, ctx: &'a Context, n: &'a Notification) -> SendFuture<'a>;

    /// Whether the service is told of acknowledgements (PagerDuty and Opsgenie acknowledge
    /// their incidents; chat and email get a short message).
    fn wants_acknowledgements(&self) -> bool {
        true
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receiver {
    pub name: String,
    /// Operators' own wording, as Go templates over Alertmanager's template data (`.Alerts`,
    /// `.CommonLabels`, …), rendered by the server: the title (subject, header) …
    #[serde(default)]
    pub title: Option<String>,
    /// … the text that replaces the list of alerts …
    #[serde(default)]
    pub text: Option<String>,
    /// … and a webhook's whole body.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub email: Vec<EmailConfig>,
    #[serde(default)]
    pub slack: Vec<SlackConfig>,
    #[serde(default)]
    pub teams: Vec<TeamsConfig>,
    #[serde(default)]
    pub discord: Vec<DiscordConfig>,
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    #[serde(default)]
    pub sms: Vec<SmsConfig>,
    #[serde(default)]
    pub pagerduty: Vec<PagerdutyConfig>,
    #[serde(default)]
    pub opsgenie: Vec<OpsgenieConfig>,
    #[serde(default)]
    pub alertmanager: Vec<AlertmanagerConfig>,
}

impl Receiver {
    /// Every channel with its stable name within the receiver, e.g. `slack[0]`.
    pub fn channels(&self) -> Vec<(String, &dyn Channel)> {
        let mut out: Vec<(String, &dyn Channel)> = Vec::new();
        fn add<'a, C: Channel>(out: &mut Vec<(String, &'a dyn Channel)>, list: &'a [C]) {
            for (i, c) in list.iter().enumerate() {
                out.push((format!("{}[{i}]", c.kind()), c));
            }
        }
        add(&mut out, &self.email);
        add(&mut out, &self.slack);
        add(&mut out, &self.teams);
        add(&mut out, &self.discord);
        add(&mut out, &self.webhook);
        add(&mut out, &self.sms);
        add(&mut out, &self.pagerduty);
        add(&mut out, &self.opsgenie);
        add(&mut out, &self.alertmanager);
        out
    }

    /// The channel named `name` (as [`Receiver::channels`] names them).
    pub fn channel(&self, name: &str) -> Option<&dyn Channel> {
        self.channels()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    /// Prepares every channel; errors name the channel, e.g. `slack[0]: webhook_url ...`.
    pub fn prepare(&mut self) -> Result<(), String> {
        fn each<C: Channel>(list: &mut [C]) -> Result<(), String> {
            for (i, c) in list.iter_mut().enumerate() {
                c.prepare().map_err(|e| format!("{}[{i}]: {e}", c.kind()))?;
            }
            Ok(())
        }
        each(&mut self.email)?;
        each(&mut self.slack)?;
        each(&mut self.teams)?;
        each(&mut self.discord)?;
        each(&mut self.webhook)?;
        each(&mut self.sms)?;
        each(&mut self.pagerduty)?;
        each(&mut self.opsgenie)?;
        each(&mut self.alertmanager)?;
        Ok(())
    }
}
