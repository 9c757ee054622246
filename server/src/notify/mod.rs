//! The notifier: delivers the rule engine's alert transitions to people.
//!
//! The rules write each transition with an outbox row in the same transaction. The
//! notifier's [`dispatch::step`] takes the outbox into alert groups (Alertmanager's route
//! tree and grouping), decides what to send under silences, maintenance windows,
//! inhibition, dependencies, flap detection, business hours, repeats and escalation, and
//! writes each message before anything is sent, all in one transaction. [`Notifier::run`]
//! then sends the queued messages through the channels of `sysward-notify`, retrying with
//! backoff, and marks each one after. A crash between a send and its mark sends that message
//! again with the same notification id; nothing else is lost or repeated.

pub mod config;
mod db;
mod dispatch;
pub mod oncall;
pub mod plan;
mod templates;
pub mod timing;

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    sync::{Arc, Mutex, MutexGuard, RwLock},
    time::Duration,
};

use rusqlite::Connection;
use sysward_notify::{AlertInfo, Context, Delivery, Event, Notification, SendError, Status};
use tracing::{info, warn};

pub use config::NotifyConfig;
pub use db::{GroupRow, MessageRow, NotifyError, SilenceRow};
pub use dispatch::{StepReport, fingerprint};
use plan::Plan;

use crate::store::Clock;

/// Messages sent at once.
const MAX_IN_FLIGHT: usize = 16;
/// Retries wait 1 s, 2 s, 4 s … up to this, with jitter.
const MAX_BACKOFF_MS: i64 = 300_000;

/// Sent, failed and given up, by receiver and channel.
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    counts: Mutex<BTreeMap<(String, String, &'static str), u64>>,
}

impl NotifyMetrics {
    fn count(&self, receiver: &str, channel: &str, result: &'static str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *c.entry((receiver.to_string(), channel.to_string(), result))
            .or_default() += 1;
    }

    /// `(receiver, channel kind, result) → count`.
    pub fn snapshot(&self) -> Vec<((String, String, &'static str), u64)> {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

pub struct Notifier {
    conn: Mutex<Connection>,
    plan: RwLock<Arc<Plan>>,
    clock: Arc<dyn Clock>,
    ctx: Context,
    external_url: String,
    in_flight: Mutex<HashSet<String>>,
    pub metrics: NotifyMetrics,
    /// Woken by the rule engine after it evaluated, and by the API after a change.
    wake: Arc<tokio::sync::Notify>,
}

impl Notifier {
    pub fn open(
        config: Arc<NotifyConfig>,
        db_path: &Path,
        clock: Arc<dyn Clock>,
        external_url: String,
        wake: Arc<tokio::sync::Notify>,
    ) -> Result<Notifier, NotifyError> {
        let ctx = Context::new(config.timeout).map_err(|e| NotifyError::Invalid(e.to_string()))?;
        let plan = Plan::build(config).map_err(NotifyError::Invalid)?;
        Ok(Notifier {
            conn: Mutex::new(db::open(db_path)?),
            plan: RwLock::new(Arc::new(plan)),
            clock,
            ctx,
            external_url: external_url.trim_end_matches('/').to_string(),
            in_flight: Mutex::new(HashSet::new()),
            metrics: NotifyMetrics::default(),
            wake,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn plan(&self) -> Arc<Plan> {
        self.plan.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes a new configuration (a reload); groups and queued messages stay.
    pub fn reload(&self, config: Arc<NotifyConfig>) -> Result<(), NotifyError> {
        let plan = Plan::build(config).map_err(NotifyError::Invalid)?;
        *self.plan.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(plan);
        self.wake.notify_one();
        Ok(())
    }

    /// Takes the outbox and writes what is due now, in one transaction.
    pub fn step(&self) -> Result<StepReport, NotifyError> {
        let plan = self.plan();
        let env = dispatch::StepEnv {
            plan: &plan,
            now: self.clock.now_ms(),
            external_url: &self.external_url,
        };
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let report = dispatch::step(&tx, &env)?;
        tx.commit()?;
        Ok(report)
    }

    /// Steps and sends until `stop` resolves.
    pub async fn run(self: Arc<Self>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let sending = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut last_prune = 0;
        loop {
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.step()).await {
                Ok(Err(e)) => warn!(error = %e, "Notifier step failed; trying again."),
                Err(e) => warn!(error = %e, "Notifier step panicked; trying again."),
                Ok(Ok(_)) => {}
            }
            self.send_due(&sending).await;
            let now = self.clock.now_ms();
            if now - last_prune > 3_600_000 {
                last_prune = now;
                self.prune(now);
            }
            let wait = self.wait_ms(now);
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
            }
        }
    }

    /// Until the next timer, at most a second (the outbox is also polled that often, in
    /// case a wake was missed).
    fn wait_ms(&self, now: i64) -> i64 {
        let next = db::next_due(&self.conn()).ok().flatten();
        next.map_or(1000, |t| (t - now).clamp(10, 1000))
    }

    fn prune(&self, now: i64) {
        let keep = self.plan().config.history_retention.as_millis() as i64;
        if let Err(e) = db::prune(&self.conn(), now - keep) {
            warn!(error = %e, "Cannot prune the notification history.");
        }
    }

    async fn send_due(self: &Arc<Self>, permits: &Arc<tokio::sync::Semaphore>) {
        let due = match db::due_messages(&self.conn(), self.clock.now_ms(), 256) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "Cannot read the notification queue.");
                return;
            }
        };
        for m in due {
            if !self.in_flight().insert(m.id.clone()) {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let id = m.id.clone();
                me.deliver(m).await;
                me.in_flight().remove(&id);
                drop(permit);
                me.wake.notify_one();
            });
        }
    }

    fn in_flight(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends one message and records the outcome.
    async fn deliver(&self, m: MessageRow) {
        let plan = self.plan();
        let outcome = match serde_json::from_str::<Notification>(&m.body) {
            Err(e) => Err(SendError::Permanent(format!("unreadable message: {e}"))),
            Ok(n) => match plan
                .receiver(&m.receiver)
                .and_then(|r| r.channel(&m.channel))
            {
                None => Err(SendError::Permanent(format!(
                    "receiver {:?} has no channel {} any more",
                    m.receiver, m.channel
                ))),
                Some(channel) => channel.send(&self.ctx, &n).await,
            },
        };
        let kind = m.channel.split('[').next().unwrap_or("").to_string();
        let now = self.clock.now_ms();
        let give_up = plan.config.give_up_after.as_millis() as i64;
        let conn = self.conn();
        let recorded = match outcome {
            Ok(d) => {
                self.metrics.count(&m.receiver, &kind, "sent");
                db::record_sent(&conn, &m.id, now, d.status, &d.answer)
            }
            Err(SendError::Retry { reason, after }) if now - m.created_ms < give_up => {
                self.metrics.count(&m.receiver, &kind, "retried");
                let next = now + backoff_ms(m.attempts, after);
                warn!(
                    receiver = m.receiver,
                    channel = m.channel,
                    error = reason,
                    retry_in_ms = next - now,
                    "Notification not delivered; will retry."
                );
                db::record_retry(&conn, &m.id, next, &reason)
            }
            Err(SendError::Retry { reason, .. }) => {
                self.metrics.count(&m.receiver, &kind, "given_up");
                warn!(
                    receiver = m.receiver,
                    channel = m.channel,
                    error = reason,
                    "Notification given up after retrying too long."
                );
                db::record_failed(&conn, &m.id, now, "given_up", &reason)
            }
            Err(SendError::Permanent(reason)) => {
                self.metrics.count(&m.receiver, &kind, "failed");
                warn!(
                    receiver = m.receiver,
                    channel = m.channel,
                    error = reason,
                    "Notification refused by the service."
                );
                db::record_failed(&conn, &m.id, now, "failed", &reason)
            }
        };
        if let Err(e) = recorded {
            warn!(error = %e, id = m.id, "Cannot record a notification's outcome; it may be sent again.");
        }
    }

    /// Acknowledges the groups of `id` (a group id or an alert fingerprint).
    pub fn acknowledge(&self, id: &str, by: &str) -> Result<Vec<String>, NotifyError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids = db::acknowledge(&tx, id, by, self.clock.now_ms())?;
        tx.commit()?;
        drop(conn);
        if ids.is_empty() {
            return Err(NotifyError::NotFound(format!("firing alert group {id:?}")));
        }
        info!(group = id, by, "Alert group acknowledged.");
        self.wake.notify_one();
        Ok(ids)
    }

    /// Acknowledges through a signed link (one use, until it expires).
    pub fn acknowledge_link(&self, token: &str) -> Result<Vec<String>, NotifyError> {
        let now = self.clock.now_ms();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(key) = db::use_ack_link(&tx, &dispatch::ack_token_hash(token), now)? else {
            return Err(NotifyError::NotFound("valid acknowledgement link".into()));
        };
        let ids = db::acknowledge(&tx, &key, "link", now)?;
        tx.commit()?;
        drop(conn);
        self.wake.notify_one();
        Ok(ids)
    }

    pub fn silences(&self) -> Result<Vec<SilenceRow>, NotifyError> {
        db::silences(&self.conn())
    }

    /// Adds a silence (`kind` = `silence`) or a maintenance window; returns its id.
    pub fn add_silence(&self, mut s: SilenceRow) -> Result<String, NotifyError> {
        config::parse_matchers(&s.matchers).map_err(NotifyError::Invalid)?;
        if s.matchers.is_empty() {
            return Err(NotifyError::Invalid("a silence needs matchers".into()));
        }
        if s.ends_ms <= s.starts_ms {
            return Err(NotifyError::Invalid(
                "a silence must end after it starts".into(),
            ));
        }
        if !matches!(s.kind.as_str(), "silence" | "maintenance") {
            return Err(NotifyError::Invalid(
                "kind is silence or maintenance".into(),
            ));
        }
        s.id = hex::encode(rand::random::<[u8; 8]>());
        s.created_ms = self.clock.now_ms();
        db::insert_silence(&self.conn(), &s)?;
        self.wake.notify_one();
        Ok(s.id)
    }

    pub fn expire_silence(&self, id: &str) -> Result<(), NotifyError> {
        if !db::expire_silence(&self.conn(), id, self.clock.now_ms())? {
            return Err(NotifyError::NotFound(format!("silence {id:?}")));
        }
        self.wake.notify_one();
        Ok(())
    }

    pub fn history(
        &self,
        since_ms: i64,
        receiver: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageRow>, NotifyError> {
        db::history(&self.conn(), since_ms, receiver, limit)
    }

    pub fn groups(&self) -> Result<Vec<GroupRow>, NotifyError> {
        db::groups(&self.conn())
    }

    /// Queued messages and the oldest one's age in ms.
    pub fn queue_depth(&self) -> (i64, i64) {
        db::queue_depth(&self.conn(), self.clock.now_ms()).unwrap_or((0, 0))
    }

    /// Sends a test message through every channel of `receiver` at once (not queued) and
    /// returns each channel's answer.
    pub async fn test_receiver(
        &self,
        receiver: &str,
    ) -> Result<Vec<(String, Result<Delivery, SendError>)>, NotifyError> {
        let plan = self.plan();
        let r = plan
            .receiver(receiver)
            .ok_or_else(|| NotifyError::NotFound(format!("receiver {receiver:?}")))?;
        let mut n = test_notification(receiver, &self.external_url, self.clock.now_ms());
        if let Some(t) = plan.templates.get(receiver) {
            n.custom = templates::render(t, &n);
        }
        let mut resolved = n.clone();
        resolved.status = Status::Resolved;
        for a in &mut resolved.alerts {
            a.status = Status::Resolved;
            a.ends_at_ms = Some(n.created_ms);
        }
        let mut out = Vec::new();
        for (name, channel) in r.channels() {
            let mut sent = channel.send(&self.ctx, &n).await;
            // Services that open incidents get them closed again at once.
            if sent.is_ok()
                && matches!(channel.kind(), "pagerduty" | "opsgenie" | "alertmanager")
                && let Err(e) = channel.send(&self.ctx, &resolved).await
            {
                sent = Err(e);
            }
            out.push((name, sent));
        }
        Ok(out)
    }
}

/// Exponential from 1 s, capped, with up to 25 % jitter; at least what the service asked.
fn backoff_ms(attempts: i64, after: Option<Duration>) -> i64 {
    let base = 1000i64
        .saturating_mul(1 << attempts.clamp(0, 20))
        .min(MAX_BACKOFF_MS);
    let jitter = rand::random_range(0..=base / 4);
    let asked = after.map_or(0, |d| d.as_millis() as i64);
    (base + jitter).max(asked)
}

fn test_notification(receiver: &str, external_url: &str, now: i64) -> Notification {
    let labels: BTreeMap<String, String> = [
        ("alertname", "SyswardTest"),
        ("severity", "info"),
        ("instance", "sysward-server"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations = [(
        "summary".to_string(),
        format!("A test message for receiver {receiver}"),
    )]
    .into_iter()
    .collect();
    Notification {
        id: format!("test-{now}"),
        group_key: "test".into(),
        receiver: receiver.into(),
        event: Event::Test,
        status: Status::Firing,
        alerts: vec![AlertInfo {
            fingerprint: fingerprint(&labels),
            status: Status::Firing,
            labels: labels.clone(),
            annotations,
            starts_at_ms: now,
            ends_at_ms: None,
            value: None,
            generator_url: format!("{external_url}/api/v1/alerts"),
        }],
        group_labels: BTreeMap::new(),
        common_labels: labels,
        common_annotations: BTreeMap::new(),
        external_url: external_url.into(),
        ack_url: None,
        custom: Default::default(),
        created_ms: now,
    }
}

#[cfg(test)]
mod tests;
