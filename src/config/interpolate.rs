//! `${NAME}` substitution from the environment inside configuration values.
//!
//! `$${` is a literal `${`. A missing variable is an error naming the key, never a silent
//! empty string: an empty API key would only show up as 403s much later.

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolateError {
    /// `${NAME}` named a variable that is not set.
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// `${` without a closing `}` or with an invalid name.
    #[error("invalid ${{…}} reference: {0}")]
    Malformed(String),
}

/// Replaces every `${NAME}` in `input` with `lookup(NAME)`.
pub fn interpolate(
    input: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    if !input.contains('$') {
        return Ok(input.to_owned());
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| InterpolateError::Malformed(after.to_owned()))?;
            let name = &tail[..end];
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(InterpolateError::Malformed(format!("${{{name}}}")));
            }
            let value = lookup(name).ok_or_else(|| InterpolateError::Missing(name.to_owned()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("abc".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_and_escapes() {
        assert_eq!(interpolate("Bearer ${TOKEN}", env).unwrap(), "Bearer abc");
        assert_eq!(interpolate("${TOKEN}${TOKEN}", env).unwrap(), "abcabc");
        assert_eq!(interpolate("a$${TOKEN}", env).unwrap(), "a${TOKEN}");
        assert_eq!(interpolate("cost $5", env).unwrap(), "cost $5");
        assert_eq!(interpolate("x${EMPTY}y", env).unwrap(), "xy");
        assert_eq!(interpolate("plain", env).unwrap(), "plain");
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(
            interpolate("${NOPE}", env),
            Err(InterpolateError::Missing("NOPE".into()))
        );
        assert!(matches!(
            interpolate("${OPEN", env),
            Err(InterpolateError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${a-b}", env),
            Err(InterpolateError::Malformed(_))
        ));
    }
}
