//! The [`Metrics`] port over the Prometheus HTTP API (`/api/v1/query`,
//! `/api/v1/query_range`), with bounded timeouts. Answers are kept apart:
//! a number, "no data" (empty result), NaN, and provider errors
//! (unreachable, timeout, HTTP or PromQL error) — none is read as healthy.
//!
//! Also the SLO query templates: `{{namespace}}`, `{{app}}`, `{{version}}`,
//! `{{env}}`, `{{interval}}`, `{{track}}` filled from validated values (no
//! quotes or braces can reach the PromQL), an unknown variable refused.

use crate::ports::{Metrics, MetricsError, Sample};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::time::Duration;

pub struct Prometheus {
    base: String,
    client: reqwest::blocking::Client,
}

#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default)]
    error: Option<String>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
}

#[derive(Deserialize)]
struct AnswerData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

fn sample(v: &serde_json::Value) -> Result<(i64, Sample), String> {
    let pair = v
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or("not a [time, value] pair")?;
    let t = pair[0].as_f64().ok_or("timestamp is not a number")? as i64;
    let s = pair[1].as_str().ok_or("value is not a string")?;
    let value = match s {
        "NaN" => Sample::NaN,
        other => Sample::Value(
            other
                .parse::<f64>()
                .map_err(|_| format!("value {other:?} is not a number"))?,
        ),
    };
    Ok((t, value))
}

impl Prometheus {
    /// `base`: e.g. `http://127.0.0.1:9090`. `timeout` bounds each request.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, MetricsError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| MetricsError::Provider(format!("http client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            client,
        })
    }

    fn call(
        &self,
        path: &str,
        query: &str,
        params: &[(&str, String)],
    ) -> Result<AnswerData, MetricsError> {
        let url = format!("{}{path}", self.base);
        let mut form: Vec<(&str, String)> = vec![("query", query.to_string())];
        form.extend(params.iter().cloned());
        let resp = self
            .client
            .post(&url)
            .form(&form)
            .send()
            .map_err(|e| MetricsError::Provider(format!("{url}: {e}")))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .map_err(|e| MetricsError::Provider(format!("{url}: reading the answer: {e}")))?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|e| {
            MetricsError::Provider(format!(
                "{url}: HTTP {status}, not a Prometheus answer: {e}"
            ))
        })?;
        if answer.status != "success" {
            let message = answer.error.unwrap_or_else(|| "(no message)".into());
            // Bad PromQL is the env's to fix; anything else is the provider's.
            return Err(match answer.error_type.as_deref() {
                Some("bad_data") => MetricsError::Query {
                    query: query.to_string(),
                    message,
                },
                other => {
                    MetricsError::Provider(format!("{url}: {} {message}", other.unwrap_or("error")))
                }
            });
        }
        answer
            .data
            .ok_or_else(|| MetricsError::Provider(format!("{url}: success without data")))
    }

    fn one_series<'a>(
        query: &str,
        result: &'a serde_json::Value,
    ) -> Result<Option<&'a serde_json::Value>, MetricsError> {
        let series = result
            .as_array()
            .ok_or_else(|| MetricsError::Provider("result is not a list".into()))?;
        match series.len() {
            0 => Ok(None),
            1 => Ok(Some(&series[0])),
            n => Err(MetricsError::Query {
                query: query.to_string(),
                message: format!(
                    "returned {n} series where one was expected; aggregate it (e.g. sum(...))"
                ),
            }),
        }
    }
}

fn unix(t: DateTime<Utc>) -> String {
    format!("{:.3}", t.timestamp_millis() as f64 / 1000.0)
}

impl Metrics for Prometheus {
    fn instant(&self, query: &str, at: Option<DateTime<Utc>>) -> Result<Sample, MetricsError> {
        let params: Vec<(&str, String)> = at.map(|t| ("time", unix(t))).into_iter().collect();
        let data = self.call("/api/v1/query", query, &params)?;
        let bad = |m: String| MetricsError::Provider(format!("query {query:?}: {m}"));
        match data.result_type.as_str() {
            "scalar" => sample(&data.result).map(|(_, s)| s).map_err(bad),
            "vector" => match Self::one_series(query, &data.result)? {
                None => Ok(Sample::NoData),
                Some(s) => sample(&s["value"]).map(|(_, s)| s).map_err(bad),
            },
            other => Err(MetricsError::Query {
                query: query.to_string(),
                message: format!("returned a {other}, not a single number"),
            }),
        }
    }

    fn range(
        &self,
        query: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: Duration,
    ) -> Result<Vec<(i64, Sample)>, MetricsError> {
        let params = vec![
            ("start", unix(start)),
            ("end", unix(end)),
            ("step", format!("{}", step.as_secs_f64().max(0.001))),
        ];
        let data = self.call("/api/v1/query_range", query, &params)?;
        let bad = |m: String| MetricsError::Provider(format!("query {query:?}: {m}"));
        match Self::one_series(query, &data.result)? {
            None => Ok(Vec::new()),
            Some(s) => s["values"]
                .as_array()
                .ok_or_else(|| bad("matrix series without values".into()))?
                .iter()
                .map(|v| sample(v).map_err(bad))
                .collect(),
        }
    }
}

/// Fills a query template. Each value must be a plain token (letters,
/// digits, `-_.:/`), so no value can close a label matcher or inject
/// PromQL; every `{{name}}` must be known.
pub fn render_query(template: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in query template {template:?}"))?;
        let name = after[..end].trim();
        let value = vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let known: Vec<&str> = vars.iter().map(|(k, _)| *k).collect();
                format!(
                    "unknown variable {{{{{name}}}}} in query template; known: {}",
                    known.join(", ")
                )
            })?;
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
        {
            return Err(format!(
                "value {value:?} for {{{{{name}}}}} is not a plain token (letters, digits, -_.:/)"
            ));
        }
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_known_variables_and_refuse_injection() {
        let q = render_query(
            r#"sum(rate(x{namespace="{{namespace}}",version="{{ version }}"}[{{interval}}]))"#,
            &[
                ("namespace", "demo-dev"),
                ("version", "1.2.0"),
                ("interval", "30s"),
            ],
        )
        .unwrap();
        assert_eq!(
            q,
            r#"sum(rate(x{namespace="demo-dev",version="1.2.0"}[30s]))"#
        );
        assert!(
            render_query("x{a=\"{{nope}}\"}", &[("app", "demo")])
                .unwrap_err()
                .contains("unknown variable {{nope}}")
        );
        assert!(
            render_query("x{a=\"{{app}}\"}", &[("app", "demo\"} or vector(1) #")])
                .unwrap_err()
                .contains("not a plain token")
        );
        assert!(
            render_query("x{{app", &[("app", "demo")])
                .unwrap_err()
                .contains("unclosed")
        );
    }

    #[test]
    fn samples_tell_nan_from_numbers() {
        let v = serde_json::json!([1700000000.5, "NaN"]);
        assert_eq!(sample(&v).unwrap(), (1700000000, Sample::NaN));
        let v = serde_json::json!([1700000000, "0.25"]);
        assert_eq!(sample(&v).unwrap().1, Sample::Value(0.25));
        assert!(sample(&serde_json::json!([1, "abc"])).is_err());
    }
}
