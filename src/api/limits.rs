//! Oversized requests are answered with RESOURCE_EXHAUSTED and the limit, as gRPC prescribes.
//! tonic rejects a message above `max_decoding_message_size` with OUT_OF_RANGE before any
//! handler runs, so unary calls are fixed up by a layer around the services, and streams by
//! the handler that reads them, both with [`remap_oversize`].

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{Code, Status};

use crate::error::Error;
use tower::{Layer, Service};

const TONIC_OVERSIZE_PREFIX: &str = "Error, decoded message length too large";

/// Turns tonic's OUT_OF_RANGE for an oversized message into RESOURCE_EXHAUSTED with a message
/// naming the limit and the option that sets it; other statuses pass unchanged.
pub fn remap_oversize(status: Status) -> Status {
    if status.code() != Code::OutOfRange || !status.message().starts_with(TONIC_OVERSIZE_PREFIX) {
        return status;
    }
    // tonic says "found N bytes, the limit is: M bytes".
    let numbers: Vec<&str> = status
        .message()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let message = match numbers.as_slice() {
        [found, limit] => format!(
            "request message is {found} bytes, larger than this server's limit of {limit} bytes \
             (--max-message-bytes); send a smaller message"
        ),
        _ => format!(
            "request message is larger than this server's limit (--max-message-bytes): {}",
            status.message()
        ),
    };
    Error::MessageTooLarge(message).into()
}

/// Tower layer applying [`remap_oversize`] to trailers-only error responses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeLayer;

impl<S> Layer<S> for OversizeLayer {
    type Service = OversizeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OversizeService { inner }
    }
}

/// See [`OversizeLayer`].
#[derive(Debug, Clone)]
pub struct OversizeService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for OversizeService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            let oversize = Status::from_header_map(response.headers()).filter(|s| {
                s.code() == Code::OutOfRange && s.message().starts_with(TONIC_OVERSIZE_PREFIX)
            });
            if let Some(status) = oversize {
                let headers = response.headers_mut();
                headers.remove("grpc-status");
                headers.remove("grpc-message");
                headers.remove("grpc-status-details-bin");
                // Writing the headers of a plain status cannot fail.
                let _ = remap_oversize(status).add_header(headers);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_becomes_resource_exhausted_naming_the_limit() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 5242885 bytes, the limit is: 4194304 bytes",
        );
        let status = remap_oversize(tonic);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(
            status.message().contains("5242885 bytes"),
            "{}",
            status.message()
        );
        assert!(
            status.message().contains("limit of 4194304 bytes"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn other_statuses_pass_unchanged() {
        let status = remap_oversize(Status::out_of_range("cursor beyond head"));
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            remap_oversize(Status::not_found("x")).code(),
            Code::NotFound
        );
    }
}
