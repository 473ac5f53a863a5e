//! `GET /v1/projects`: the projects a token may act on, so that a client (the web console)
//! can offer them without knowing them in advance. A project exists for the API when it has
//! destinations (in the configuration file or the store) or a token names it — the same rule
//! as the destinations list's 404 — so a project-scoped token sees its own projects, even
//! before their first destination, and never another's.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Grant;
use super::error::{ApiError, ErrorBody};
use super::http::{Api, Inner};

/// `GET /v1/projects`.
#[derive(Serialize, ToSchema)]
pub struct ProjectList {
    /// Project ids, sorted.
    pub projects: Vec<String>,
}

impl Inner {
    /// Every project the API knows: with destinations in the file or the store, or named by
    /// a token.
    fn known_projects(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self
            .file()
            .destinations
            .iter()
            .map(|d| d.project.clone())
            .collect();
        all.extend(self.store.snapshot().keys().map(|(p, _)| p.clone()));
        all.extend(self.tokens.named_projects().map(str::to_owned));
        all
    }
}

/// The projects of `known` that `grant` covers.
fn visible(known: BTreeSet<String>, grant: &Grant) -> Vec<String> {
    known.into_iter().filter(|p| grant.allows(p)).collect()
}

#[utoipa::path(get, path = "/v1/projects", tag = "destinations",
    summary = "The projects this token may act on",
    description = "Projects that have destinations (in the configuration file or created through the API) or are named by a token, restricted to those the token may act on: a project-scoped token sees only its own projects, a token without `projects` sees all. Sorted.",
    responses(
        (status = 200, description = "The projects", body = ProjectList),
        (status = 401, description = "No or unknown bearer token", body = ErrorBody),
        (status = 503, description = "Starting", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn list_projects(
    State(api): State<Api>,
    headers: HeaderMap,
) -> Result<Json<ProjectList>, ApiError> {
    let api = api.get()?;
    let grant = api.tokens.authenticate(&headers)?;
    Ok(Json(ProjectList {
        projects: visible(api.known_projects(), &grant),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scoped_grant_sees_only_its_projects() {
        let known: BTreeSet<String> = ["proj_a", "proj_b", "proj_c"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            visible(known.clone(), &Grant::All),
            ["proj_a", "proj_b", "proj_c"]
        );
        let scoped = Grant::Projects(["proj_b".to_owned()].into_iter().collect());
        assert_eq!(visible(known, &scoped), ["proj_b"]);
    }
}
