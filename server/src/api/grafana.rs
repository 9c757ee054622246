//! `GET /api/grafana/health` (role read): what the Grafana sync last found.

use super::*;

pub(super) async fn health(
    AxState(app): AxState<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    require(&app, &headers, Access::Read).await?;
    Ok(Json(
        json!({ "status": "success", "data": app.grafana.status_json() }),
    ))
}
