use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /api/v1/enroll`: an agent asks for a client certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The join token's secret; absent when the agent asks to be approved by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// A PKCS#10 request, PEM. The private key stays on the host.
    pub csr_pem: String,
    /// The host's name.
    pub hostname: String,
    /// Operator-set host labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Set when polling a pending request made earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollStatus {
    /// The certificate is in the answer.
    Approved,
    /// Waiting for `sysward-server agents approve ID`.
    Pending,
}

/// The answer to an [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Approved or pending.
    pub status: EnrollStatus,
    /// The id the server gave this agent.
    pub agent_id: String,
    /// The client certificate, PEM, when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_pem: Option<String>,
    /// The server's CA certificate, PEM, which the agent trusts from now on.
    pub server_ca_pem: String,
}

/// `POST /api/v1/renew`: an enrolled agent, showing its current client certificate, asks
/// for a new one for a new key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// A PKCS#10 request, PEM, for a new key pair; its common name is the agent's id.
    pub csr_pem: String,
}

/// The answer to a [`RenewRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The agent the certificate is for.
    pub agent_id: String,
    /// The new client certificate, PEM.
    pub cert_pem: String,
    /// When it expires, Unix seconds.
    pub not_after: i64,
}
