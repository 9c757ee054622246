//! TODO(helper): the sms channel.

use serde::Deserialize;

use crate::{
    Context, Notification,
    receiver::{Channel, SendFuture},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {}

impl Channel for SmsConfig {
    fn kind(&self) -> &'static str {
        "sms"
    }

    fn prepare(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn send<'a>(&'a self, _ctx: &'a Context, _n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async { Err(crate::SendError::Permanent("not built yet".into())) })
    }
}
