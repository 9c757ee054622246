//! Sysward's notification channels. Each channel turns a [`Notification`] (one alert group's
//! news for one receiver) into what its service documents, and sends it: email over SMTP,
//! Slack, Microsoft Teams, Discord, any webhook, SMS through Twilio, PagerDuty, Opsgenie and
//! Alertmanager. Routing, grouping, escalation and the durable outbox live in the server;
//! this crate knows the services.

pub mod http;
pub mod message;
pub mod receiver;
pub mod secret;
pub mod text;

pub mod alertmanager;
pub mod discord;
pub mod email;
pub mod opsgenie;
pub mod pagerduty;
pub mod slack;
pub mod sms;
pub mod teams;
pub mod webhook;

pub use http::{Context, Delivery, SendError};
pub use message::{AlertInfo, Event, Notification, Severity, Status};
pub use receiver::{Channel, Receiver};
pub use secret::Secret;
