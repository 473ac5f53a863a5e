//! Every error answer of the API has one shape:
//! `{"error": {"code": "...", "message": "...", "details": [{"pointer": "/filter/min_level", "message": "..."}]}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorInfo,
}

/// The error itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorInfo {
    /// A stable, machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `read_only`, `invalid_json`, `validation_failed`, `method_not_allowed`,
    /// `unavailable`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// One entry per problem (validation errors); may be empty.
    pub details: Vec<ErrorDetail>,
}

/// One problem of a request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A JSON pointer into the request body (`/filter/min_level`); `""` for the whole body.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

/// An error the handlers return.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error without details.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: ErrorInfo {
                    code: code.to_owned(),
                    message: message.into(),
                    details: Vec::new(),
                },
            },
        }
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// 403.
    pub fn forbidden(project: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not act on project {project:?}"),
        )
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 422 with one detail per `(pointer, message)`.
    pub fn validation(details: Vec<(String, String)>) -> Self {
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the destination definition is not valid",
        );
        e.body.error.details = details
            .into_iter()
            .map(|(pointer, message)| ErrorDetail { pointer, message })
            .collect();
        e
    }

    /// 503: the store could not be written.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
