//! RFC 3339 UTC instants (`2030-01-01T00:00:00Z`) as metadata carries them in `expires`.
//!
//! Only the `Z` form is accepted (humantime's strict parser): an offset or a local time in signed metadata would
//! only invite two readings of one instant.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcTime(SystemTime);

impl UtcTime {
    /// Whole seconds: metadata never carries sub-second times, so a round trip is exact.
    pub fn new(t: SystemTime) -> UtcTime {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        UtcTime(UNIX_EPOCH + Duration::from_secs(secs))
    }

    pub fn parse(value: &str) -> Result<UtcTime, Error> {
        let t = humantime::parse_rfc3339(value).map_err(|_| Error::Time {
            value: value.to_owned(),
        })?;
        if !value.ends_with('Z') {
            return Err(Error::Time {
                value: value.to_owned(),
            });
        }
        Ok(UtcTime::new(t))
    }

    pub fn system_time(self) -> SystemTime {
        self.0
    }
}

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_rfc3339_seconds(self.0))
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        UtcTime::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let t = UtcTime::parse("2030-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_string(), "2030-01-02T03:04:05Z");
        assert!(UtcTime::parse("2030-01-02T03:04:05+01:00").is_err());
        assert!(UtcTime::parse("2030-01-02 03:04:05").is_err());
        assert!(UtcTime::parse("soon").is_err());
    }
}
