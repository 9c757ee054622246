//! `/api/v1/status/buildinfo`: Prometheus' shape with our version and commit.

use axum::extract::Request;

use super::{
    prom::{serve, success},
    *,
};

pub(super) async fn buildinfo(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "buildinfo", req, |_, _| async {
        let data = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": env!("SYSWARD_GIT_COMMIT"),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
        });
        Ok(success(data, &Default::default()))
    })
    .await
}
