use std::fmt;
use std::str::FromStr;

/// Where a broadcast is in its life. `Offline` is a broadcast whose publisher dropped and
/// may still reconnect within the grace window; only `Ended` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamStatus {
    Offline,
    Live,
    Ended,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown stream status {0:?}: expected offline, live or ended")]
pub struct UnknownStatus(pub String);

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offline => "offline",
            Self::Live => "live",
            Self::Ended => "ended",
        }
    }
}

impl FromStr for StreamStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "offline" => Ok(Self::Offline),
            "live" => Ok(Self::Live),
            "ended" => Ok(Self::Ended),
            other => Err(UnknownStatus(other.to_owned())),
        }
    }
}

impl TryFrom<String> for StreamStatus {
    type Error = UnknownStatus;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for StreamStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a list of broadcasts is ordered: most recently started first, or by how many watch
/// now (the live directory). Ties go to the higher id either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamSort {
    #[default]
    Started,
    Viewers,
}

impl StreamSort {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Viewers => "viewers",
        }
    }
}
