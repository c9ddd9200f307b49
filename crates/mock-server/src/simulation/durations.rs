//! How long worker tasks run: [`TaskDurations`] (a default, overrides by task type, a scale
//! factor), parsed from `--task-duration` / `PROXMOX_MOCK_TASK_DURATION`.

use std::collections::BTreeMap;
use std::time::Duration;

/// How long worker tasks run, by task type.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDurations {
    /// Duration of task types without an override.
    pub default: Duration,
    /// Overrides by task type (`qmstart`, `vzdump`, ...).
    pub per_type: BTreeMap<String, Duration>,
    /// Factor applied to every duration (1 by default): realistic durations, run faster.
    pub scale: f64,
}

impl Default for TaskDurations {
    fn default() -> Self {
        TaskDurations {
            default: Duration::ZERO,
            per_type: BTreeMap::new(),
            scale: 1.0,
        }
    }
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`; a bare number is seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration '{text}' (use e.g. 500ms, 2s, 1m)"))?;
    if !value.is_finite() || value < 0.0 || value * scale > 86_400.0 {
        return Err(format!("duration '{text}' out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(value * scale))
}

impl TaskDurations {
    /// Parses `[DEFAULT][,TYPE=DURATION]...[,scale=FACTOR]`, e.g. `1s,qmstart=2s,vzdump=10s`,
    /// `qmstart=2s` (`default=` or `*=` also name the default) or `vzdump=10m,scale=0.01`.
    pub fn parse(text: &str) -> Result<TaskDurations, String> {
        let mut durations = TaskDurations::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some((kind, value)) => {
                    let kind = kind.trim();
                    if kind == "scale" {
                        durations.scale = value
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|scale| scale.is_finite() && *scale >= 0.0 && *scale <= 1000.0)
                            .ok_or_else(|| format!("invalid scale '{value}' (0 to 1000)"))?;
                        continue;
                    }
                    let duration = parse_duration(value)?;
                    if matches!(kind, "default" | "*") {
                        durations.default = duration;
                    } else if kind.is_empty()
                        || !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    {
                        return Err(format!("invalid task type '{kind}'"));
                    } else {
                        durations.per_type.insert(kind.to_owned(), duration);
                    }
                }
                None => durations.default = parse_duration(part)?,
            }
        }
        Ok(durations)
    }

    /// The duration of a task type, scaled.
    pub fn for_type(&self, kind: &str) -> Duration {
        let duration = self.per_type.get(kind).copied().unwrap_or(self.default);
        if self.scale == 1.0 {
            duration
        } else {
            duration.mul_f64(self.scale)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_parse() {
        let durations = TaskDurations::parse("1s, qmstart=2s,vzdump=10s").unwrap();
        assert_eq!(durations.default, Duration::from_secs(1));
        assert_eq!(durations.for_type("qmstart"), Duration::from_secs(2));
        assert_eq!(durations.for_type("vzdump"), Duration::from_secs(10));
        assert_eq!(durations.for_type("qmstop"), Duration::from_secs(1));
        assert_eq!(
            TaskDurations::parse("qmstart=250ms").unwrap().default,
            Duration::ZERO
        );
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(TaskDurations::parse("q m=1s").is_err());
        let scaled = TaskDurations::parse("vzdump=10m,scale=0.01").unwrap();
        assert_eq!(scaled.for_type("vzdump"), Duration::from_secs(6));
        assert!(TaskDurations::parse("scale=-1").is_err());
    }
}
