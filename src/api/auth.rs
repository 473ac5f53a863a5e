//! Bearer tokens from `[api] tokens`, compared in constant time.

use std::collections::HashSet;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::ApiToken;

/// What a caller may do.
#[derive(Debug, Clone)]
pub enum Grant {
    /// Every project.
    All,
    /// These projects.
    Projects(HashSet<String>),
}

impl Grant {
    /// Whether it covers `project`.
    pub fn allows(&self, project: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Projects(p) => p.contains(project),
        }
    }

    /// Checks `project`: 403 when not covered.
    pub fn check(&self, project: &str) -> Result<(), ApiError> {
        if self.allows(project) {
            Ok(())
        } else {
            Err(ApiError::forbidden(project))
        }
    }
}

/// The configured tokens, kept as SHA-256 digests.
pub struct Tokens(Vec<([u8; 32], Grant)>);

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// From the configuration.
    pub fn new(tokens: &[ApiToken]) -> Self {
        Self(
            tokens
                .iter()
                .map(|t| {
                    let grant = match &t.projects {
                        None => Grant::All,
                        Some(p) => Grant::Projects(p.iter().cloned().collect()),
                    };
                    (digest(t.token.expose()), grant)
                })
                .collect(),
        )
    }

    /// Projects named by some token (they are known to the API even without destinations).
    pub fn named_projects(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|(_, g)| match g {
            Grant::All => Vec::new(),
            Grant::Projects(p) => p.iter().map(String::as_str).collect(),
        })
    }

    /// The grant of the request's bearer token: 401 without one or with an unknown one. Every
    /// configured token is compared, in constant time, whatever matches.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Grant, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let presented = digest(presented);
        let mut found = None;
        for (known, grant) in &self.0 {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(grant);
            }
        }
        found.cloned().ok_or_else(ApiError::unauthorized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn grants_follow_the_tokens() {
        let tokens = Tokens::new(&[
            ApiToken {
                token: Secret::new("all-projects-token-1"),
                projects: None,
            },
            ApiToken {
                token: Secret::new("project-a-token-0001"),
                projects: Some(vec!["proj_a".into()]),
            },
        ]);
        let all = tokens
            .authenticate(&headers("Bearer all-projects-token-1"))
            .unwrap();
        assert!(all.allows("anything"));
        let a = tokens
            .authenticate(&headers("bearer  project-a-token-0001 "))
            .unwrap();
        assert!(a.allows("proj_a"));
        assert_eq!(a.check("proj_b").unwrap_err().status, 403);
        for bad in [
            "Bearer nope",
            "Basic abc",
            "Bearer ",
            "project-a-token-0001",
        ] {
            assert_eq!(
                tokens.authenticate(&headers(bad)).unwrap_err().status,
                401,
                "{bad}"
            );
        }
        assert_eq!(
            tokens.authenticate(&HeaderMap::new()).unwrap_err().status,
            401
        );
        assert_eq!(tokens.named_projects().collect::<Vec<_>>(), ["proj_a"]);
    }
}
