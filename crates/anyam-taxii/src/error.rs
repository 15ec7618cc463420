//! TAXII error-message resources (TAXII 2.1 §3.6.1): every failure the API
//! returns, including 401 and internal errors, has this body and media type.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::media::TAXII_21;

/// An API failure, rendered as a TAXII error message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: String,
    pub description: Option<String>,
    /// Extra headers, e.g. `WWW-Authenticate` on 401 or `Retry-After`.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    http_status: String,
}

impl ApiError {
    pub fn new(status: StatusCode, title: impl Into<String>) -> ApiError {
        ApiError {
            status,
            title: title.into(),
            description: None,
            headers: Vec::new(),
        }
    }

    pub fn with_description(mut self, d: impl Into<String>) -> ApiError {
        self.description = Some(d.into());
        self
    }

    pub fn bad_request(d: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "Bad request").with_description(d)
    }

    /// The one "not found" answer: it never says whether the resource
    /// exists and is hidden from the caller, or does not exist at all.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not found")
            .with_description("The resource does not exist, or the caller may not access it.")
    }

    pub fn forbidden(d: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden").with_description(d)
    }

    pub fn unauthorized() -> ApiError {
        let mut e = ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized")
            .with_description("Authenticate with HTTP Basic or a Bearer API token.");
        e.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Basic realm=\"anyam\", charset=\"UTF-8\", Bearer realm=\"anyam\"",
            ),
        ));
        e
    }

    /// Internal failures are logged in full and described to the client
    /// only by a reference, so no internal detail leaves the node.
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        let reference = uuid::Uuid::new_v4();
        tracing::error!(%reference, error = %err, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").with_description(
            format!("The server failed to handle the request (reference {reference})."),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            title: &self.title,
            description: self.description.as_deref(),
            http_status: self.status.as_u16().to_string(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut resp = (self.status, json).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(TAXII_21));
        for (k, v) in self.headers {
            resp.headers_mut().append(k, v);
        }
        resp
    }
}

impl From<anyam_policy::Denied> for ApiError {
    fn from(d: anyam_policy::Denied) -> ApiError {
        match d {
            anyam_policy::Denied::NotFound => ApiError::not_found(),
            anyam_policy::Denied::Forbidden(why) => ApiError::forbidden(why),
            anyam_policy::Denied::Store(e) => e.into(),
            // Never a partial answer: nothing is released without the policy.
            anyam_policy::Denied::Policy(e) => ApiError::internal(e),
        }
    }
}

impl From<anyam_store::StoreError> for ApiError {
    fn from(e: anyam_store::StoreError) -> ApiError {
        match e {
            anyam_store::StoreError::BadCursor => {
                ApiError::bad_request("The `next` value is not one this server issued.")
            }
            anyam_store::StoreError::NotFound(_) => ApiError::not_found(),
            other => ApiError::internal(other),
        }
    }
}
