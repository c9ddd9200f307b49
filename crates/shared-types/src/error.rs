//! The crate's one error type: why a hand-written Proxmox value failed to parse or validate.
//!
//! Every variant that is about a piece of text carries that text, cut to
//! [`MAX_QUOTED_CHARS`] characters, so a message names what was wrong without
//! flooding a log with a multi-kilobyte string.
//! The messages describe only this layer; there is no underlying cause to chain.
//!
//! Errors quote the input they reject.
//! None of the types in this crate are meant to hold secrets, but a generic
//! [`PropertyString`](crate::PropertyString) can be handed anything, so callers
//! that parse secret-bearing property strings (an API token inside a
//! `proxmox-remote` string, say) should not log these errors verbatim.

/// At most this many characters of an offending input are kept in an [`Error`].
pub const MAX_QUOTED_CHARS: usize = 64;

/// A Proxmox value that could not be parsed or failed validation.
///
/// Each variant names the kind of value that was being parsed.
/// Text fields hold the offending input, truncated to [`MAX_QUOTED_CHARS`]
/// characters with a trailing `…` when it was longer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task identifier (`UPID:node:pid:pstart:starttime:type:id:user:`) was malformed.
    #[error("invalid UPID {input:?}: {reason}")]
    InvalidUpid {
        /// The rejected text (truncated).
        input: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A boolean was not one of the spellings Proxmox accepts.
    #[error("invalid boolean {input:?}: expected 0, 1, true, false, yes, no, on or off")]
    InvalidBool {
        /// The rejected text (truncated).
        input: String,
    },

    /// A property string (`key=value,key=value`) could not be split into entries.
    #[error("invalid property string {input:?}: {reason}")]
    InvalidPropertyString {
        /// The rejected property string (truncated).
        input: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A key cannot appear in a property string (it is empty, contains `,` or `=`, or starts with `"`).
    #[error("invalid property string key {key:?}: {reason}")]
    InvalidPropertyKey {
        /// The rejected key (truncated).
        key: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A property string entry had a value of the wrong shape for its key.
    #[error("invalid value {value:?} for `{key}`: {reason}")]
    InvalidPropertyValue {
        /// The key whose value was rejected (truncated).
        key: String,
        /// The rejected value (truncated).
        value: String,
        /// What was expected instead.
        reason: String,
    },

    /// A property string lacked a key its format requires.
    #[error("property string {input:?} lacks the required key `{key}`")]
    MissingProperty {
        /// The property string (truncated).
        input: String,
        /// The required key.
        key: String,
    },

    /// A disk size (`8G`, `512M`, `+2G`) was malformed or does not fit in 64 bits.
    #[error("invalid disk size {input:?}: {reason}")]
    InvalidDiskSize {
        /// The rejected text (truncated).
        input: String,
        /// What was wrong with it.
        reason: String,
    },

    /// A guest's `startup` option (`order=1,up=30,down=60`) was malformed.
    #[error("invalid startup order {input:?}: unable to parse startup options")]
    InvalidStartupOrder {
        /// The rejected text (truncated).
        input: String,
    },

    /// An index does not exist in an indexed parameter family such as `net[n]`.
    #[error("index {index} is out of range for `{prefix}[n]` (valid indices are 0 to {max})", max = count.saturating_sub(1))]
    IndexOutOfRange {
        /// The family's key prefix, e.g. `net`.
        prefix: &'static str,
        /// The rejected index.
        index: u32,
        /// How many indices the family has.
        count: u32,
    },
}

impl Error {
    pub(crate) fn invalid_upid(input: &str, reason: impl Into<String>) -> Self {
        Self::InvalidUpid {
            input: truncate(input),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_startup_order(input: &str) -> Self {
        Self::InvalidStartupOrder {
            input: truncate(input),
        }
    }

    pub(crate) fn invalid_bool(input: &str) -> Self {
        Self::InvalidBool {
            input: truncate(input),
        }
    }

    pub(crate) fn invalid_property_string(input: &str, reason: impl Into<String>) -> Self {
        Self::InvalidPropertyString {
            input: truncate(input),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_property_key(key: &str, reason: impl Into<String>) -> Self {
        Self::InvalidPropertyKey {
            key: truncate(key),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_property_value(
        key: &str,
        value: &str,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidPropertyValue {
            key: truncate(key),
            value: truncate(value),
            reason: reason.into(),
        }
    }

    pub(crate) fn missing_property(input: &str, key: &str) -> Self {
        Self::MissingProperty {
            input: truncate(input),
            key: key.to_owned(),
        }
    }

    pub(crate) fn invalid_disk_size(input: &str, reason: impl Into<String>) -> Self {
        Self::InvalidDiskSize {
            input: truncate(input),
            reason: reason.into(),
        }
    }
}

/// Keeps at most [`MAX_QUOTED_CHARS`] characters of `text`, marking a cut with `…`.
pub(crate) fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        None => text.to_owned(),
        Some((cut_at, _)) => format!("{}…", &text[..cut_at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_kept_whole() {
        assert_eq!(truncate("abc"), "abc");
        let exactly_max = "x".repeat(MAX_QUOTED_CHARS);
        assert_eq!(truncate(&exactly_max), exactly_max);
    }

    #[test]
    fn long_input_is_cut_on_a_char_boundary() {
        let long = "ä".repeat(MAX_QUOTED_CHARS + 10);
        let cut = truncate(&long);
        assert_eq!(cut.chars().count(), MAX_QUOTED_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn messages_quote_the_input() {
        let error = Error::invalid_bool("maybe");
        assert_eq!(
            error.to_string(),
            r#"invalid boolean "maybe": expected 0, 1, true, false, yes, no, on or off"#
        );
        let error = Error::IndexOutOfRange {
            prefix: "net",
            index: 32,
            count: 32,
        };
        assert_eq!(
            error.to_string(),
            "index 32 is out of range for `net[n]` (valid indices are 0 to 31)"
        );
    }
}
