//! `POST /api/v1/enroll`: a host asks for its client certificate, with a join token or
//! to wait for an operator's approval.

use super::*;

pub(super) async fn enroll(
    AxState(app): AxState<Arc<AppState>>,
    peer: Option<axum::Extension<PeerAddr>>,
    body: Body,
) -> Result<Json<EnrollResponse>, ApiError> {
    let peer = peer.map(|p| p.0.0.to_string()).unwrap_or_default();
    let bytes = read_body(body, MAX_ENROLL_BODY).await?;
    let req: EnrollRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("enrollment request is malformed: {e}"),
        )
    })?;
    let hostname = req.hostname.trim().to_string();
    if hostname.is_empty() || hostname.len() > 253 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "hostname must be 1 to 253 bytes",
        ));
    }
    let ca_pem = app.pki.ca_pem.clone();
    let app2 = app.clone();
    blocking(move || {
        let app = app2;
        let answer = |status, agent_id: String, cert_pem| EnrollResponse {
            status,
            agent_id,
            cert_pem,
            server_ca_pem: ca_pem.clone(),
        };
        if let Some(secret) = &req.secret {
            let agent_id = format!("ag-{}", random_hex(8));
            // Sign before using the token, so that a bad CSR does not burn it.
            let cert = app.pki.sign_agent_csr(&req.csr_pem, &agent_id).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("{e:#}"))
            })?;
            match app.state.enroll_with_token(secret, &agent_id, &hostname, cert.not_after_ms) {
                Ok(()) => {
                    info!(agent_id, hostname, %peer, "Agent enrolled with a join token.");
                    Ok(Json(answer(EnrollStatus::Approved, agent_id, Some(cert.pem))))
                }
                Err(e @ (StateError::UnknownToken | StateError::UsedToken | StateError::ExpiredToken)) => {
                    warn!(hostname, %peer, error = %e, "Enrollment refused.");
                    Err(ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))
                }
                Err(e) => Err(internal(e)),
            }
        } else if let Some(agent_id) = &req.agent_id {
            let row = app.state.agent(agent_id).map_err(internal)?.ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("no enrollment request {agent_id}"))
            })?;
            match row.status {
                AgentStatus::Pending => Ok(Json(answer(EnrollStatus::Pending, row.id, None))),
                AgentStatus::Revoked => {
                    warn!(agent_id, %peer, "Enrollment poll for a revoked agent refused.");
                    Err(ApiError::new(StatusCode::FORBIDDEN, format!("agent {agent_id} is revoked")))
                }
                AgentStatus::Approved => {
                    // Only the holder of the key that made the request may collect the cert.
                    if row.csr_pem.as_deref() != Some(req.csr_pem.as_str()) {
                        warn!(agent_id, %peer, "Enrollment poll with another CSR refused.");
                        return Err(ApiError::new(
                            StatusCode::FORBIDDEN,
                            "this request does not match the one that was approved",
                        ));
                    }
                    let cert = app.pki.sign_agent_csr(&req.csr_pem, agent_id).map_err(internal)?;
                    app.state.record_cert(agent_id, cert.not_after_ms).map_err(internal)?;
                    Ok(Json(answer(EnrollStatus::Approved, row.id, Some(cert.pem))))
                }
            }
        } else {
            rcgen::CertificateSigningRequestParams::from_pem(&req.csr_pem).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, format!("the certificate request is not valid: {e}"))
            })?;
            let pending = app
                .state
                .list_agents()
                .map_err(internal)?
                .iter()
                .filter(|a| a.status == AgentStatus::Pending)
                .count();
            if pending >= MAX_PENDING_AGENTS {
                return Err(ApiError::retry(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many enrollment requests wait for approval",
                    60,
                ));
            }
            let agent_id = format!("ag-{}", random_hex(8));
            app.state.register_pending(&agent_id, &hostname, &req.csr_pem, &peer).map_err(internal)?;
            info!(agent_id, hostname, %peer, "Agent asks to join; approve with `sysward-server agents approve {agent_id}`.");
            Ok(Json(answer(EnrollStatus::Pending, agent_id, None)))
        }
    })
    .await?
}
