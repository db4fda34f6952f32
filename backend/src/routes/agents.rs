//! What the dashboard reads beyond the seed: the fleet, one agent's series and its processes.

use super::{ApiQuery, AppState, agent_filter, check_agent_id};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::storage::Range;
use axum::Json;
use axum::extract::{Path, State};
use protocol::{AgentSummary, ProcessHistory, ProcessesResponse, Series};
use serde::Deserialize;

/// Any range is cut into at most this many buckets, so a 7-day chart stays light.
pub(crate) const MAX_POINTS: i64 = 2000;
const MAX_RANGE_MS: i64 = 400 * 86_400_000;
const DEFAULT_RANGE_MS: i64 = 3_600_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeQuery {
    /// Start: unix seconds or RFC 3339; one hour before `to` when absent.
    from: Option<String>,
    /// End (exclusive): unix seconds or RFC 3339; now when absent.
    to: Option<String>,
    /// Bucket width in seconds; raised so that the range has at most 2000 buckets.
    step: Option<i64>,
    /// For `/processes`: one process name's history instead of the latest top list.
    name: Option<String>,
}

fn parse_time(key: &str, value: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = value.parse::<i64>() {
        return secs
            .checked_mul(1000)
            .ok_or_else(|| ApiError::Invalid(format!("{key} is out of range")));
    }
    protocol::validate::parse_ts(value)
        .map_err(|_| ApiError::Invalid(format!("{key} must be unix seconds or an RFC 3339 time")))
}

impl RangeQuery {
    fn range(&self, now: i64) -> Result<Range, ApiError> {
        let to_ms = self.to.as_deref().map(|v| parse_time("to", v)).transpose()?.unwrap_or(now);
        let from_ms = match self.from.as_deref() {
            Some(v) => parse_time("from", v)?,
            None => to_ms - DEFAULT_RANGE_MS,
        };
        let span = to_ms
            .checked_sub(from_ms)
            .filter(|s| *s > 0)
            .ok_or_else(|| ApiError::Invalid("from must be before to".into()))?;
        if span > MAX_RANGE_MS {
            return Err(ApiError::Invalid("the range may span at most 400 days".into()));
        }
        if self.step.is_some_and(|s| s <= 0 || s > MAX_RANGE_MS / 1000) {
            return Err(ApiError::Invalid(
                "step must be a positive number of seconds, at most 400 days".into(),
            ));
        }
        let min_step_s = (span + MAX_POINTS * 1000 - 1) / (MAX_POINTS * 1000);
        // Both bounds keep `step * 1000` far from overflow (it wrapped to 0 in release).
        let step_s = match self.step {
            Some(step) => step.max(min_step_s),
            None => snap_to_tier(min_step_s),
        }
        .max(1);
        Ok(Range { from_ms, to_ms, step_ms: step_s * 1000 })
    }
}

/// Without a step asked for, a tier's width when it gives at least half the buckets of the
/// finest step allowed: a day's chart then reads 1,440 minute buckets instead of 17,280
/// readings.
fn snap_to_tier(min_step_s: i64) -> i64 {
    let widths = crate::storage::rollup::TIERS.map(|tier_ms| tier_ms / 1000);
    widths.into_iter().find(|w| (min_step_s..=2 * min_step_s).contains(w)).unwrap_or(min_step_s)
}

pub(super) async fn require_agent(state: &AppState, agent_id: &str) -> Result<(), ApiError> {
    check_agent_id(agent_id)?;
    let id = agent_id.to_owned();
    let exists = state.storage.agent_exists(id).await?;
    if exists {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no agent named {agent_id:?} has reported")))
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentsQuery {
    /// Only this agent: a list of one, or none when it has not reported. An agent page keeps
    /// its drives and host figures current with it without fetching the whole fleet.
    agent_id: Option<String>,
}

#[utoipa::path(
    get, path = "/api/agents", tag = "agents", params(AgentsQuery),
    responses((status = 200, description = "Every agent that has reported", body = Vec<AgentSummary>))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AgentsQuery>,
) -> Result<Json<Vec<AgentSummary>>, ApiError> {
    Ok(Json(state.storage.agents(now_ms(), agent_filter(query.agent_id)?).await?))
}

#[utoipa::path(
    get, path = "/api/agents/{agent_id}/series", tag = "agents", params(RangeQuery),
    responses(
        (status = 200, description = "Bucketed metrics as columns", body = Series),
        (status = 404, description = "Unknown agent", body = protocol::ErrorBody),
        (status = 422, description = "Bad range", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %agent_id))]
pub(crate) async fn series(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<Series>, ApiError> {
    let range = query.range(now_ms())?;
    require_agent(&state, &agent_id).await?;
    let series = state.storage.series(agent_id, range).await?;
    Ok(Json(series))
}

/// Either the latest top processes or, with `name`, that process's history.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum ProcessesAnswer {
    Latest(ProcessesResponse),
    History(ProcessHistory),
}

#[utoipa::path(
    get, path = "/api/agents/{agent_id}/processes", tag = "agents", params(RangeQuery),
    responses(
        (status = 200, description = "Latest top processes, or one name's history", body = ProcessesAnswer),
        (status = 404, description = "Unknown agent", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %agent_id))]
pub(crate) async fn processes(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<ProcessesAnswer>, ApiError> {
    let history = match &query.name {
        Some(name) => Some((name.clone(), query.range(now_ms())?)),
        None => None,
    };
    require_agent(&state, &agent_id).await?;
    let answer = match history {
        Some((name, range)) => {
            state.storage.process_history(agent_id, name, range).await.map(ProcessesAnswer::History)
        }
        None => state.storage.latest_processes(agent_id).await.map(ProcessesAnswer::Latest),
    }?;
    Ok(Json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: Option<&str>, to: Option<&str>, step: Option<i64>) -> RangeQuery {
        RangeQuery { from: from.map(Into::into), to: to.map(Into::into), step, name: None }
    }

    #[test]
    fn ranges_never_exceed_max_points() {
        let week = q(Some("0"), Some("604800"), Some(1)).range(0).unwrap();
        assert!((week.to_ms - week.from_ms) / week.step_ms <= MAX_POINTS);
        let hour = q(None, None, None).range(7_200_000).unwrap();
        assert_eq!((hour.from_ms, hour.to_ms, hour.step_ms), (3_600_000, 7_200_000, 2000));
        let fine = q(Some("0"), Some("60"), Some(5)).range(0).unwrap();
        assert_eq!(fine.step_ms, 5000);
        // A day without a step: minutes, which the per-minute tier answers.
        assert_eq!(q(Some("0"), Some("86400"), None).range(0).unwrap().step_ms, 60_000);
        assert_eq!(q(Some("0"), Some("86400"), Some(44)).range(0).unwrap().step_ms, 44_000);
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(q(Some("10"), Some("5"), None).range(0).is_err());
        assert!(q(Some("x"), None, None).range(0).is_err());
        assert!(q(Some("0"), Some("1"), Some(0)).range(0).is_err());
        assert!(q(Some("0"), Some("1"), Some(2_305_843_009_213_693_952)).range(0).is_err());
        assert!(q(Some("0"), Some("1"), Some(i64::MAX)).range(0).is_err());
        assert!(q(Some("0"), Some("1"), Some(400 * 86_400)).range(0).is_ok());
        assert!(q(Some("0"), Some("99999999999"), None).range(0).is_err());
        assert!(q(Some("-9223372036854775807"), None, None).range(0).is_err());
        assert!(
            q(Some("2025-11-12T12:00:00Z"), Some("2025-11-12T13:00:00Z"), None).range(0).is_ok()
        );
    }
}
