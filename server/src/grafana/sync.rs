//! One provisioning pass and one check of a synced Grafana, as functions of a [`Client`]
//! and what they need to send; the loop that schedules them is in `mod.rs`.

use serde_json::{Value, json};

use super::{
    DASHBOARDS, DATASOURCE_UID, FOLDER_UID,
    client::{CallError, Client},
};

/// The oldest Grafana the sync speaks to: `PUT /api/datasources/uid/:uid` came in 9.0.
pub(super) const MIN_MAJOR_VERSION: u64 = 9;

/// What the datasource points at.
pub(super) struct DatasourceSpec {
    pub(super) name: String,
    /// This server's URL as Grafana reaches it.
    pub(super) url: String,
    /// A Sysward API token of role read.
    pub(super) token: String,
    /// This server's CA, which signed its certificate.
    pub(super) ca_pem: String,
}

/// What a pass achieved.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Synced {
    pub(super) version: String,
    pub(super) datasource_uid: String,
    pub(super) folder_uid: String,
    pub(super) dashboards: usize,
}

/// The datasource as `POST /api/datasources` and `PUT /api/datasources/uid/:uid` take it:
/// Grafana's Prometheus datasource with a custom `Authorization` header and our CA.
pub(super) fn datasource_body(
    spec: &DatasourceSpec,
    existing: Option<&super::client::Datasource>,
) -> Value {
    let mut body = json!({
        "name": spec.name,
        "type": "prometheus",
        "access": "proxy",
        "url": spec.url,
        "basicAuth": false,
        "isDefault": false,
        "jsonData": {
            "httpMethod": "POST",
            "httpHeaderName1": "Authorization",
            "tlsAuthWithCACert": true,
            "prometheusType": "Prometheus",
            // The agents' standard interval: `$__rate_interval` is then at least 4 m,
            // which always holds two samples of every collector.
            "timeInterval": "1m",
        },
        "secureJsonData": {
            "httpHeaderValue1": format!("Bearer {}", spec.token),
            "tlsCACert": spec.ca_pem,
        },
    });
    match existing {
        Some(ds) => {
            body["uid"] = json!(ds.uid);
            body["id"] = json!(ds.id);
        }
        None => body["uid"] = json!(DATASOURCE_UID),
    }
    body
}

/// Grafana's major version from `11.2.0`, `10.4.1+security-01`, `12.0.0-pre`.
pub(super) fn major_version(version: &str) -> Option<u64> {
    version
        .split('.')
        .next()?
        .trim_start_matches('v')
        .parse()
        .ok()
}

/// Checks Grafana's version, then creates or updates the datasource, makes the folder if
/// missing and uploads every shipped dashboard into it.
pub(super) async fn provision(
    client: &Client,
    spec: &DatasourceSpec,
    folder: &str,
) -> Result<Synced, CallError> {
    let health = client.health().await?;
    check_version(&health.version)?;
    let existing = client.datasource_by_name(&spec.name).await?;
    let datasource_uid = match existing {
        Some(ds) => {
            client
                .update_datasource(&ds.uid, &datasource_body(spec, Some(&ds)))
                .await?;
            ds.uid
        }
        None => {
            client
                .create_datasource(&datasource_body(spec, None))
                .await?
                .uid
        }
    };
    let folder_uid = client.ensure_folder(folder, FOLDER_UID).await?;
    for (_, text) in DASHBOARDS {
        let dashboard = dashboard_for_upload(text, &datasource_uid, &spec.name)?;
        client.upload_dashboard(&dashboard, &folder_uid).await?;
    }
    Ok(Synced {
        version: health.version,
        datasource_uid,
        folder_uid,
        dashboards: DASHBOARDS.len(),
    })
}

/// What a check of a synced Grafana found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Checked {
    /// Reachable, the key valid, the datasource there.
    Fine { version: String },
    /// Reachable and the key valid, but the datasource is gone: provision again.
    DatasourceMissing { version: String },
}

/// `GET /api/health`, then the datasource by name with the key.
pub(super) async fn check(client: &Client, datasource_name: &str) -> Result<Checked, CallError> {
    let health = client.health().await?;
    Ok(match client.datasource_by_name(datasource_name).await? {
        Some(_) => Checked::Fine {
            version: health.version,
        },
        None => Checked::DatasourceMissing {
            version: health.version,
        },
    })
}

fn check_version(version: &str) -> Result<(), CallError> {
    match major_version(version) {
        Some(major) if major >= MIN_MAJOR_VERSION => Ok(()),
        _ => Err(CallError::Answer {
            what: "GET /api/health",
            why: format!(
                "Grafana {version} is older than {MIN_MAJOR_VERSION}.0, the oldest the sync supports"
            ),
        }),
    }
}

/// A shipped dashboard ready for `POST /api/dashboards/db`: `id` null (Grafana finds it
/// by `uid`), and its `$datasource` variable set to our datasource.
pub(super) fn dashboard_for_upload(
    text: &str,
    datasource_uid: &str,
    datasource_name: &str,
) -> Result<Value, CallError> {
    let mut dashboard: Value = serde_json::from_str(text).map_err(|e| CallError::Answer {
        what: "a shipped dashboard",
        why: e.to_string(),
    })?;
    // Indexing to assign would panic on anything but an object.
    let Some(object) = dashboard.as_object_mut() else {
        return Err(CallError::Answer {
            what: "a shipped dashboard",
            why: "not a JSON object".into(),
        });
    };
    object.insert("id".into(), Value::Null);
    if let Some(list) = dashboard["templating"]["list"].as_array_mut() {
        for var in list.iter_mut().filter(|v| v["type"] == "datasource") {
            var["current"] = json!({ "text": datasource_name, "value": datasource_uid });
        }
    }
    Ok(dashboard)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// What Grafana answers is outside input: any version text or dashboard text
        /// gives a value or an error, never a panic.
        #[test]
        fn any_text_is_read_without_panic(text in "\\PC{0,200}") {
            let _ = major_version(&text);
            let _ = check_version(&text);
            let _ = dashboard_for_upload(&text, "u", "n");
        }
    }

    #[test]
    fn versions_are_read_and_old_ones_refused() {
        assert_eq!(major_version("11.2.0"), Some(11));
        assert_eq!(major_version("10.4.1+security-01"), Some(10));
        assert_eq!(major_version("v12.0.0-pre"), Some(12));
        assert_eq!(major_version("x"), None);
        assert!(check_version("9.0.0").is_ok());
        let err = check_version("8.5.27").unwrap_err().to_string();
        assert!(err.contains("8.5.27") && err.contains("9.0"), "{err}");
    }

    #[test]
    fn every_shipped_dashboard_is_json_with_a_uid_and_a_datasource_variable() {
        for (name, text) in DASHBOARDS {
            let d = dashboard_for_upload(text, "ds-uid", "Sysward").unwrap();
            assert!(d["uid"].as_str().is_some_and(|u| u.len() <= 40), "{name}");
            assert!(d["id"].is_null(), "{name}");
            let vars = d["templating"]["list"].as_array().unwrap();
            let ds = vars.iter().find(|v| v["type"] == "datasource").unwrap();
            assert_eq!(ds["current"]["value"], "ds-uid", "{name}");
        }
    }

    #[test]
    fn the_datasource_sends_the_token_and_trusts_our_ca() {
        let spec = DatasourceSpec {
            name: "Sysward".into(),
            url: "https://mon:8443".into(),
            token: "swapi_x".into(),
            ca_pem: "PEM".into(),
        };
        let created = datasource_body(&spec, None);
        assert_eq!(created["uid"], DATASOURCE_UID);
        assert_eq!(
            created["secureJsonData"]["httpHeaderValue1"],
            "Bearer swapi_x"
        );
        let existing = super::super::client::Datasource {
            id: 7,
            uid: "abc".into(),
        };
        let updated = datasource_body(&spec, Some(&existing));
        assert_eq!(
            (&updated["id"], &updated["uid"]),
            (&json!(7), &json!("abc"))
        );
    }
}
