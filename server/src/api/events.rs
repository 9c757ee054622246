//! `/api/v1/events` and `/api/v1/checks`: the check results agents sent, as a list and as
//! the latest state of every check. In the query API's envelope, errors and access rules
//! (role read), with its time formats.

use axum::extract::Request;

use super::{
    labels::blocking_prom,
    prom::{Params, PromError, page_size, rfc3339, serve, success, time_json},
    *,
};
use crate::store::{EventQuery, LatestCheck, MAX_EVENTS, StoredEvent};

/// How far back `/api/v1/events` looks without `since`.
const DEFAULT_SINCE_MS: i64 = 3_600_000;

/// `GET /api/v1/events?agent_id=&check=&since=&until=&limit=`: results, newest first.
pub(super) async fn events(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "events", req, |app, r| async move {
        let query = event_query(&r.params, crate::state::now_ms())?;
        let store = app.store.clone();
        let found =
            blocking_prom(move || store.events(&query).map_err(PromError::internal)).await?;
        let list: Vec<serde_json::Value> = found.iter().map(event_json).collect();
        Ok(success(json!(list), &Default::default()))
    })
    .await
}

/// `GET /api/v1/checks?agent_id=`: the latest result of every check, by agent and check.
pub(super) async fn checks(AxState(app): AxState<Arc<AppState>>, req: Request) -> Response {
    serve(app, "checks", req, |app, r| async move {
        let agent = non_empty(&r.params, "agent_id");
        let store = app.store.clone();
        let found = blocking_prom(move || {
            store
                .latest_checks(agent.as_deref())
                .map_err(PromError::internal)
        })
        .await?;
        let list: Vec<serde_json::Value> = found.iter().map(check_json).collect();
        Ok(success(json!(list), &Default::default()))
    })
    .await
}

/// The store query of a request at `now_ms`: `since` an hour back by default, `limit`
/// 1,000 by default and at most 10,000.
fn event_query(p: &Params, now_ms: i64) -> Result<EventQuery, PromError> {
    let since_ms = p.time("since", now_ms.saturating_sub(DEFAULT_SINCE_MS))?;
    let until_ms = match p.get("until") {
        None | Some("") => None,
        Some(_) => Some(p.time("until", i64::MAX)?),
    };
    if until_ms.is_some_and(|until| until < since_ms) {
        return Err(PromError::bad_data("until must not be before since"));
    }
    Ok(EventQuery {
        agent_id: non_empty(p, "agent_id"),
        check: non_empty(p, "check"),
        since_ms,
        until_ms,
        limit: page_size(p.limit()?).min(MAX_EVENTS),
    })
}

/// A filter parameter; empty counts as absent, as Prometheus treats empty parameters.
fn non_empty(p: &Params, key: &str) -> Option<String> {
    p.get(key).filter(|v| !v.is_empty()).map(str::to_string)
}

fn event_json(e: &StoredEvent) -> serde_json::Value {
    json!({
        "agent_id": e.agent_id,
        "instance": e.instance,
        "check": e.name,
        "state": e.state,
        "output": e.output,
        "long_output": e.long_output,
        "hard": e.hard,
        "time": rfc3339(Some(e.ts)),
        "ts": time_json(e.ts),
    })
}

/// A check's latest result: the result's fields, with `since` and `last` for its times.
fn check_json(c: &LatestCheck) -> serde_json::Value {
    let mut out = event_json(&c.event);
    if let Some(fields) = out.as_object_mut() {
        fields.remove("time");
        fields.remove("ts");
        fields.insert("since".into(), json!(rfc3339(Some(c.state_since_ms))));
        fields.insert("last".into(), json!(rfc3339(Some(c.event.ts))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from_pairs(pairs)
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn defaults_are_the_last_hour_and_a_thousand_results() {
        let q = event_query(&params(&[("agent_id", ""), ("check", "")]), NOW).unwrap();
        assert_eq!(
            q,
            EventQuery {
                agent_id: None,
                check: None,
                since_ms: NOW - 3_600_000,
                until_ms: None,
                limit: 1000,
            }
        );
    }

    #[test]
    fn times_take_seconds_or_rfc3339_and_limit_is_capped() {
        let q = event_query(
            &params(&[
                ("agent_id", "ag"),
                ("check", "disk"),
                ("since", "2023-11-14T22:13:20Z"),
                ("until", "1700000060.5"),
                ("limit", "50000"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(q.agent_id.as_deref(), Some("ag"));
        assert_eq!(q.check.as_deref(), Some("disk"));
        assert_eq!((q.since_ms, q.until_ms), (NOW, Some(NOW + 60_500)));
        assert_eq!(q.limit, MAX_EVENTS);
    }

    #[test]
    fn bad_times_and_limits_are_bad_data() {
        for bad in [
            vec![("since", "yesterday")],
            vec![("until", "soon")],
            vec![("since", "100"), ("until", "99")],
            vec![("limit", "-1")],
        ] {
            let err = event_query(&params(&bad), NOW).unwrap_err();
            assert_eq!(err.error_type(), "bad_data", "{bad:?}");
        }
        let err = event_query(&params(&[("since", "yesterday")]), NOW).unwrap_err();
        assert!(err.message.contains("\"since\""), "{}", err.message);
    }

    #[test]
    fn answers_name_the_check_and_print_times_both_ways() {
        let event = StoredEvent {
            agent_id: "ag".into(),
            instance: "web1".into(),
            name: "disk".into(),
            state: "CRITICAL".into(),
            output: "CRITICAL - disk on fire".into(),
            long_output: "sda1 100%".into(),
            hard: Some(true),
            ts: NOW + 500,
        };
        let got = event_json(&event);
        assert_eq!(got["check"], "disk");
        assert_eq!(got["time"], "2023-11-14T22:13:20.5Z");
        assert_eq!(got["ts"].to_string(), "1700000000.5");
        assert_eq!(got["hard"], true);
        let check = check_json(&LatestCheck {
            event: StoredEvent {
                hard: None,
                ..event
            },
            state_since_ms: NOW - 60_000,
        });
        assert_eq!(check["since"], "2023-11-14T22:12:20Z");
        assert_eq!(check["last"], "2023-11-14T22:13:20.5Z");
        assert_eq!(check["hard"], serde_json::Value::Null);
    }
}
