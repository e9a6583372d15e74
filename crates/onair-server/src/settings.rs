//! Shapes of settings shared by every section's configuration: at the bottom of the
//! crate, so a domain that owns its section (`NotifyConfig`…) does not import `config`.

use serde::{Deserialize, Deserializer};

/// Accepts `"a,b"` from an environment variable (a lone number arrives parsed) as well as
/// `["a", "b"]` from TOML.
pub(crate) fn comma_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List<T> {
        Text(String),
        One(T),
        Many(Vec<T>),
    }
    match List::<T>::deserialize(deserializer)? {
        List::Text(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .collect(),
        List::One(one) => Ok(vec![one]),
        List::Many(v) => Ok(v),
    }
}
