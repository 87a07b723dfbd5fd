//! A refused request's answer, in the protocol the caller speaks: a status and a one-line body for
//! HTTP, a trailers-only response (`grpc-status`, `grpc-message`) for gRPC. Never names the token.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use tonic::{Code, Status};

/// Why the layer refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token, a garbled or repeated header, or a token gatehouse refused; says which.
    Unauthenticated(String),
    /// gatehouse denied; its reason.
    Denied(String),
    /// No route maps the request.
    Unmapped,
    /// A path parameter is not valid percent-encoded UTF-8.
    BadPath,
    /// gatehouse failed to answer and the failure mode is closed.
    Unavailable,
    /// gatehouse refused the question the routes made of the request.
    Failed,
}

impl Refusal {
    fn http_status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Refusal::Denied(_) | Refusal::Unmapped => StatusCode::FORBIDDEN,
            Refusal::BadPath => StatusCode::BAD_REQUEST,
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Failed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            Refusal::Unauthenticated(_) => Code::Unauthenticated,
            Refusal::Denied(_) | Refusal::Unmapped => Code::PermissionDenied,
            Refusal::BadPath => Code::InvalidArgument,
            Refusal::Unavailable => Code::Unavailable,
            Refusal::Failed => Code::Internal,
        }
    }

    /// What the caller is told.
    pub fn message(&self) -> String {
        match self {
            Refusal::Unauthenticated(why) => format!("unauthenticated: {why}"),
            Refusal::Denied(reason) => format!("permission denied: {reason}"),
            Refusal::Unmapped => "permission denied: no route maps this request".to_owned(),
            Refusal::BadPath => {
                "bad request: the path is not valid percent-encoded UTF-8".to_owned()
            }
            Refusal::Unavailable => "authorization is unavailable".to_owned(),
            Refusal::Failed => "authorization failed".to_owned(),
        }
    }

    /// The response for a gRPC caller when `grpc`, for an HTTP caller otherwise.
    pub fn into_response(self, grpc: bool) -> Response<Full<Bytes>> {
        if grpc {
            return Status::new(self.grpc_code(), self.message()).into_http();
        }
        let mut response = Response::new(Full::new(Bytes::from(self.message() + "\n")));
        *response.status_mut() = self.http_status();
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if matches!(self, Refusal::Unauthenticated(_)) {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Whether the request is a gRPC call (`content-type: application/grpc`, `application/grpc+proto`,
/// ...), which must be refused with a gRPC status rather than an HTTP one.
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .get(..16)
                .is_some_and(|start| start.eq_ignore_ascii_case("application/grpc"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_is_told_apart_by_content_type() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            headers
        };
        assert!(is_grpc(&with("application/grpc")));
        assert!(is_grpc(&with("application/grpc+proto")));
        assert!(!is_grpc(&with("application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    #[test]
    fn a_grpc_refusal_is_trailers_only_with_its_status() {
        let response = Refusal::Denied("no rule allows it".to_owned()).into_response(true);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["grpc-status"], "7");
        assert!(
            response.headers()["grpc-message"]
                .to_str()
                .unwrap()
                .contains("no%20rule%20allows%20it")
        );
    }

    #[test]
    fn an_http_refusal_has_its_status_and_reason() {
        let response = Refusal::Unauthenticated("token expired".to_owned()).into_response(false);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    }
}
