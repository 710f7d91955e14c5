//! The service-level error and its single mapping to `tonic::Status`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use tracing::error;

use crate::{
    domain::{ValidationError, Violation, describe_violations},
    feed::FeedEnd,
    store::StoreError,
};

/// Result of the service layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request broke field rules; `violations` carry full paths such as `article.uri`.
    #[error("{}", describe_violations(what, violations))]
    InvalidArgument {
        /// What was invalid: "article" or "request".
        what: &'static str,
        /// Every broken rule.
        violations: Vec<Violation>,
    },
    /// The storage layer failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server is shutting down.
    #[error("{0}")]
    ShuttingDown(String),
    /// The call carries no valid token.
    #[error("{0}")]
    Unauthenticated(String),
    /// The call's token lacks the role the method needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// A request message is larger than the server accepts.
    #[error("{0}")]
    MessageTooLarge(String),
    /// No live article belongs to the story.
    #[error("story {0} not found: no article that is not retracted has this story_id")]
    StoryNotFound(crate::domain::ArticleId),
}

impl From<FeedEnd> for Error {
    fn from(end: FeedEnd) -> Self {
        match end {
            FeedEnd::ShuttingDown { .. } => Self::ShuttingDown(end.to_string()),
            FeedEnd::Store(e) => Self::Store(e),
        }
    }
}

impl Error {
    /// One invalid request field.
    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument {
            what: "request",
            violations: vec![Violation {
                field: field.into(),
                description: description.into(),
            }],
        }
    }

    /// An invalid article inside a request whose article field is `path`.
    pub fn invalid_article(path: &str, error: ValidationError) -> Self {
        Self::InvalidArgument {
            what: "article",
            violations: error
                .violations
                .into_iter()
                .map(|v| Violation {
                    field: if v.field == "article" {
                        path.to_owned()
                    } else {
                        format!("{path}.{}", v.field)
                    },
                    description: v.description,
                })
                .collect(),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument { violations, .. } => {
                let violations: Vec<FieldViolation> = violations
                    .into_iter()
                    .map(|v| FieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::ShuttingDown(_) => Status::unavailable(message),
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::PermissionDenied(_) => Status::permission_denied(message),
            Error::MessageTooLarge(_) => Status::resource_exhausted(message),
            Error::StoryNotFound(_) => Status::not_found(message),
            Error::Store(store_error) => match store_error {
                StoreError::NotFound(_) | StoreError::ConsumerNotFound(_) => {
                    Status::not_found(message)
                }
                StoreError::CursorBeyondHead { .. } => Status::failed_precondition(message),
                StoreError::Retracted(_) => Status::failed_precondition(message),
                StoreError::InvalidPageToken(why) => Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request_violation("page_token", why),
                ),
                StoreError::Unavailable(_) | StoreError::OutcomeUnknown(_) => {
                    Status::unavailable(message)
                }
                StoreError::DiskFull(_) => Status::resource_exhausted(message),
                StoreError::Database(_)
                | StoreError::Io(_)
                | StoreError::Corrupt { .. }
                | StoreError::Incompatible(_)
                | StoreError::InUse(_) => {
                    error!(error = %store_error, "storage failure");
                    Status::internal("internal storage error; the server log has the details")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ArticleId;

    #[test]
    fn invalid_article_becomes_invalid_argument_with_bad_request() {
        let validation = ValidationError {
            violations: vec![
                Violation {
                    field: "source.id".into(),
                    description: "must be a slug".into(),
                },
                Violation {
                    field: "tags[2]".into(),
                    description: "is required".into(),
                },
            ],
        };
        let status = Status::from(Error::invalid_article("article", validation));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid article (2 violations): article.source.id: must be a slug; article.tags[2]: is required"
        );
        let fields: Vec<String> = status
            .get_details_bad_request()
            .expect("bad request details")
            .field_violations
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["article.source.id", "article.tags[2]"]);
    }

    #[test]
    fn store_errors_map_to_their_codes() {
        let id = ArticleId::from_bytes([1; 16]);
        let cases = [
            (StoreError::NotFound(id), Code::NotFound),
            (StoreError::Retracted(id), Code::FailedPrecondition),
            (StoreError::ConsumerNotFound("c".into()), Code::NotFound),
            (
                StoreError::CursorBeyondHead { cursor: 9, head: 3 },
                Code::FailedPrecondition,
            ),
            (StoreError::InvalidPageToken("bad"), Code::InvalidArgument),
            (StoreError::Unavailable("closing".into()), Code::Unavailable),
            (StoreError::DiskFull("full".into()), Code::ResourceExhausted),
            (
                StoreError::OutcomeUnknown("connection lost".into()),
                Code::Unavailable,
            ),
            (StoreError::Database("syntax error".into()), Code::Internal),
            (
                StoreError::Corrupt {
                    key: "k".into(),
                    reason: "r".into(),
                },
                Code::Internal,
            ),
            (
                StoreError::Io(std::io::Error::other("disk")),
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(Error::from(error)).code(), code);
        }
    }

    #[test]
    fn an_unknown_outcome_says_that_retrying_is_safe() {
        let status = Status::from(Error::from(StoreError::OutcomeUnknown(
            "the connection to PostgreSQL was lost during COMMIT".into(),
        )));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(
            status.message().contains("may or may not"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("retrying it is safe"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn access_errors_keep_their_codes() {
        let cases = [
            (
                Error::Unauthenticated("no token".into()),
                Code::Unauthenticated,
            ),
            (
                Error::PermissionDenied("no role".into()),
                Code::PermissionDenied,
            ),
            (
                Error::MessageTooLarge("too big".into()),
                Code::ResourceExhausted,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(error).code(), code);
        }
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let status = Status::from(Error::from(StoreError::Io(std::io::Error::other(
            "/secret/path",
        ))));
        assert!(!status.message().contains("secret"));
    }
}
