//! `Query` arguments parsed at the boundary into a typed filter; values only ever reach SQL as parameters.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use rampart_interfaces::audit::{Outcome, FILTER_KEYS, MAX_PAGE};
use rusqlite::types::Value;

/// Page size when the caller passes 0.
pub const DEFAULT_PAGE: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
enum ActionMatch {
    Exact(String),
    Prefix(String),
}

/// A parsed, valid query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    actor: Option<String>,
    action: Option<ActionMatch>,
    target: Option<String>,
    outcome: Option<Outcome>,
    peer: Option<String>,
    since_us: Option<i64>,
    until_us: Option<i64>,
    cursor: u64,
    pub limit: u32,
    pub newest_first: bool,
}

impl Query {
    /// Parses D-Bus arguments; the error says which filter was wrong and what is accepted.
    pub fn parse(
        filters: &HashMap<String, String>,
        cursor: u64,
        limit: u32,
        newest_first: bool,
    ) -> Result<Query, String> {
        if let Some(bad) = filters.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "unknown filter {bad:?}; known filters: {}",
                FILTER_KEYS.join(", ")
            ));
        }
        if limit > MAX_PAGE {
            return Err(format!(
                "limit {limit} is too large; ask for at most {MAX_PAGE} and page with the cursor"
            ));
        }
        let get = |k: &str| filters.get(k).cloned();
        let action = match filters.get("action") {
            None => None,
            Some(a) => Some(match a.strip_suffix('*') {
                Some(prefix) if !prefix.contains('*') => ActionMatch::Prefix(prefix.to_owned()),
                _ if a.contains('*') => {
                    return Err(format!(
                        "action filter {a:?}: '*' is only allowed at the end"
                    ))
                }
                _ => ActionMatch::Exact(a.clone()),
            }),
        };
        let outcome = filters
            .get("outcome")
            .map(|o| o.parse::<Outcome>())
            .transpose()?;
        let time = |k: &str| filters.get(k).map(|t| parse_time(k, t)).transpose();
        let (since_us, until_us) = (time("since")?, time("until")?);
        if let (Some(s), Some(u)) = (since_us, until_us) {
            if s > u {
                return Err("since is after until; swap them".to_owned());
            }
        }
        Ok(Query {
            actor: get("actor"),
            action,
            target: get("target"),
            outcome,
            peer: get("peer"),
            since_us,
            until_us,
            cursor,
            limit: if limit == 0 { DEFAULT_PAGE } else { limit },
            newest_first,
        })
    }

    /// `(sql, parameters)` for the WHERE clause; never empty (`1` when there is no filter).
    pub fn where_clause(&self) -> (String, Vec<Value>) {
        let text = |v: &str| Value::Text(v.to_owned());
        let mut terms: Vec<(&str, Value)> = Vec::new();
        let optional = [
            ("actor = ?", self.actor.as_deref()),
            ("target = ?", self.target.as_deref()),
            ("peer = ?", self.peer.as_deref()),
            ("outcome = ?", self.outcome.map(Outcome::as_str)),
        ];
        terms.extend(
            optional
                .into_iter()
                .filter_map(|(sql, v)| v.map(|v| (sql, text(v)))),
        );
        match &self.action {
            Some(ActionMatch::Exact(a)) => terms.push(("action = ?", text(a))),
            // A range, not substr(), so the action index is used: every string starting with `p` sorts in
            // [p, p + U+10FFFF).
            Some(ActionMatch::Prefix(p)) => {
                terms.push(("action >= ?", text(p)));
                terms.push(("action < ?", Value::Text(format!("{p}\u{10FFFF}"))));
            }
            None => {}
        }
        if let Some(s) = self.since_us {
            terms.push(("time_us >= ?", Value::Integer(s)));
        }
        if let Some(u) = self.until_us {
            terms.push(("time_us <= ?", Value::Integer(u)));
        }
        if self.cursor > 0 {
            let sql = if self.newest_first {
                "seq < ?"
            } else {
                "seq > ?"
            };
            terms.push((
                sql,
                Value::Integer(i64::try_from(self.cursor).unwrap_or(i64::MAX)),
            ));
        }
        if terms.is_empty() {
            return ("1".to_owned(), Vec::new());
        }
        let (parts, args): (Vec<&str>, Vec<Value>) = terms.into_iter().unzip();
        (parts.join(" AND "), args)
    }
}

fn parse_time(key: &str, text: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("{key} {text:?} is not a time ({e}); use RFC 3339, e.g. 2026-11-24T10:00:00Z")
    })?;
    Ok(micros(t))
}

/// Microseconds since the epoch; times before 1970 clamp to 0.
pub fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_filter_lists_the_known_ones() {
        let e = Query::parse(&f(&[("colour", "red")]), 0, 0, false).unwrap_err();
        assert!(
            e.contains("\"colour\"") && e.contains("actor, action"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        assert!(Query::parse(&f(&[("outcome", "ok")]), 0, 0, false)
            .unwrap_err()
            .contains("allowed, denied, failed"));
        assert!(Query::parse(&f(&[("since", "yesterday")]), 0, 0, false)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(Query::parse(&f(&[("action", "a*b")]), 0, 0, false).is_err());
        assert!(Query::parse(&f(&[]), 0, MAX_PAGE + 1, false).is_err());
        let swapped = [
            ("since", "2026-01-02T00:00:00Z"),
            ("until", "2026-01-01T00:00:00Z"),
        ];
        assert!(Query::parse(&f(&swapped), 0, 0, false).is_err());
    }

    #[test]
    fn values_become_parameters_not_sql() {
        let q = Query::parse(
            &f(&[("actor", "x' OR 1=1 --"), ("action", "firewall.*")]),
            5,
            10,
            true,
        )
        .unwrap();
        let (sql, args) = q.where_clause();
        assert_eq!(sql, "actor = ? AND action >= ? AND action < ? AND seq < ?");
        assert_eq!(args.len(), 4);
        assert_eq!(q.limit, 10);
    }
}
