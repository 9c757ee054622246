//! `POST /api/v1/renew`: an enrolled agent, over mutual TLS with its current certificate,
//! asks for a new certificate for a new key. Refused (403) for an agent that is unknown,
//! pending or revoked, and for a request that names another agent; at most one renewal per
//! agent per [`renewal_gap`], so that a looping agent cannot make the server sign endlessly.

use std::time::Duration;

use sysward_proto::{RenewRequest, RenewResponse};

use super::*;
use crate::{
    pki::{CsrError, check_renewal_csr, not_after_of},
    state::{RenewalSlot, now_ms},
};

/// The shortest time between two certificates signed for one agent: an hour, or a third
/// of the validity when that is shorter (agents renew when a third of the life is left, so
/// a well-behaved agent never meets the limit).
pub(super) fn renewal_gap(validity: Duration) -> Duration {
    Duration::from_secs(3600).min(validity / 3)
}

/// Whether a client certificate's not-after has passed. The handshake checks it too, but a
/// connection kept open outlives the certificate it was opened with.
pub(super) fn cert_expired(cert_der: &[u8]) -> bool {
    not_after_of(cert_der).is_none_or(|not_after| not_after.saturating_mul(1000) <= now_ms())
}

pub(super) async fn renew(
    AxState(app): AxState<Arc<AppState>>,
    axum::Extension(cert): axum::Extension<PeerCert>,
    axum::Extension(peer): axum::Extension<PeerAddr>,
    body: Body,
) -> Result<Json<RenewResponse>, ApiError> {
    let peer = peer.0;
    let Some(cert) = cert.0 else {
        warn!(%peer, "Renewal without a client certificate refused.");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "renewal needs the agent's current client certificate",
        ));
    };
    let Some(agent_id) = agent_id_of(&cert) else {
        warn!(%peer, "Renewal with a certificate without an agent id refused.");
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "client certificate names no agent",
        ));
    };
    if cert_expired(&cert) {
        warn!(agent_id, %peer, "Renewal with an expired certificate refused.");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the client certificate expired; enroll the agent again",
        ));
    }
    let bytes = read_body(body, MAX_ENROLL_BODY).await?;
    let req: RenewRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("renewal request is malformed: {e}"),
        )
    })?;
    blocking(move || sign_renewal(&app, &agent_id, &cert, &req.csr_pem, peer)).await?
}

fn sign_renewal(
    app: &AppState,
    agent_id: &str,
    cert: &[u8],
    csr_pem: &str,
    peer: std::net::SocketAddr,
) -> Result<Json<RenewResponse>, ApiError> {
    let row = app.state.agent(agent_id).map_err(internal)?;
    if row.as_ref().map(|r| r.status) != Some(AgentStatus::Approved) {
        {
            let what = row.as_ref().map_or("unknown", |r| r.status_str());
            warn!(agent_id, %peer, status = what, "Renewal refused: the agent is not approved.");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("agent {agent_id} is {what}; it cannot renew its certificate"),
            ));
        }
    }
    check_renewal_csr(csr_pem, agent_id, cert).map_err(|e| {
        warn!(agent_id, %peer, error = %e, "Renewal request refused.");
        let status = match e {
            CsrError::OtherAgent { .. } => StatusCode::FORBIDDEN,
            CsrError::Malformed(_) | CsrError::SameKey => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    })?;
    let gap = renewal_gap(app.pki.agent_cert_validity());
    match app.state.begin_renewal(agent_id, gap).map_err(internal)? {
        RenewalSlot::Granted => {}
        RenewalSlot::TooSoon { wait_ms } => {
            let seconds = u32::try_from((wait_ms + 999) / 1000)
                .unwrap_or(u32::MAX)
                .max(1);
            warn!(agent_id, %peer, retry_after_s = seconds, "Renewal refused: too soon after the last certificate.");
            return Err(ApiError::retry(
                StatusCode::TOO_MANY_REQUESTS,
                format!("a certificate was signed for agent {agent_id} less than {gap:?} ago"),
                seconds,
            ));
        }
        RenewalSlot::NotApproved => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("agent {agent_id} is not approved; it cannot renew its certificate"),
            ));
        }
    }
    let signed = app
        .pki
        .sign_agent_csr(csr_pem, agent_id)
        .map_err(internal)?;
    app.state
        .record_cert(agent_id, signed.not_after_ms)
        .map_err(internal)?;
    info!(agent_id, %peer, not_after_ms = signed.not_after_ms, "Agent certificate renewed.");
    Ok(Json(RenewResponse {
        agent_id: agent_id.to_string(),
        cert_pem: signed.pem,
        not_after: signed.not_after_ms.div_euclid(1000),
    }))
}
