//! The axum example behind the layer, asking a real gatehouse server, over real HTTP.

use std::net::SocketAddr;

use gatehouse_tower::GatehouseLayer;
use reqwest::Method;

use crate::axum_app;
use crate::common::{Gatehouse, expired_token, foreign_token, get, send, serve_axum, token};

async fn app(gatehouse: &Gatehouse) -> SocketAddr {
    serve_axum(GatehouseLayer::new(gatehouse.remote(), axum_app::routes()).unwrap()).await
}

#[tokio::test]
async fn a_reader_reads_a_book_and_the_handler_sees_their_user_id() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let (status, body) = get(app, "/books/7", Some(&token("jack", &["reader"]))).await;
    assert_eq!((status, body.as_str()), (200, "book 7 for jack\n"));
}

#[tokio::test]
async fn a_reader_may_not_delete_a_book_and_is_told_why_with_403() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let jack = token("jack", &["reader"]);
    let (status, body) = send(
        Method::DELETE,
        app,
        "/books/7",
        &[&format!("Bearer {jack}")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("user 'jack' is not allowed to perform delete on book 7"),
        "{body}"
    );
    assert!(!body.contains(&jack));
}

#[tokio::test]
async fn a_librarian_deletes_a_book() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let lin = token("lin", &["librarian"]);
    let (status, body) = send(Method::DELETE, app, "/books/7", &[&format!("Bearer {lin}")]).await;
    assert_eq!((status, body.as_str()), (200, "book 7 deleted by lin\n"));
}

#[tokio::test]
async fn a_percent_encoded_id_is_asked_about_as_the_handler_reads_it() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let jack = token("jack", &["reader"]);
    let (status, body) = send(
        Method::DELETE,
        app,
        "/books/a%3Ab",
        &[&format!("Bearer {jack}")],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("delete on book a:b"), "{body}");
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_with_401() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let (status, body) = get(app, "/books/7", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("missing authorization header"), "{body}");
}

#[tokio::test]
async fn a_repeated_or_garbled_authorization_header_is_refused_with_401() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let jack = token("jack", &["reader"]);
    let bearer = format!("Bearer {jack}");
    let (status, body) = send(Method::GET, app, "/books/7", &[&bearer, &bearer]).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("more than one authorization header"),
        "{body}"
    );
    let basic = format!("Basic {jack}");
    let spaced = format!("Bearer {jack} extra");
    for garbled in [jack.as_str(), basic.as_str(), spaced.as_str(), "Bearer "] {
        let (status, body) = send(Method::GET, app, "/books/7", &[garbled]).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("malformed authorization header"), "{body}");
        assert!(!body.contains(&jack));
    }
}

#[tokio::test]
async fn an_expired_or_foreign_token_is_refused_with_401_naming_why() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let (status, body) = get(app, "/books/7", Some(&expired_token("lin"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("token expired"), "{body}");
    let (status, body) = get(app, "/books/7", Some(&foreign_token("lin"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bad signature"), "{body}");
}

#[tokio::test]
async fn anonymous_callers_browse_the_catalog_where_the_route_allows_them() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let (status, body) = get(app, "/catalog", None).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "the catalog for anonymous\n")
    );
    let (status, body) = get(app, "/catalog", Some(&token("jack", &[]))).await;
    assert_eq!((status, body.as_str()), (200, "the catalog for jack\n"));
    // Allowing anonymous callers is not reading a bad header as none.
    let (status, body) = send(Method::GET, app, "/catalog", &["Bearer a b"]).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(app, "/catalog", Some(&expired_token("lin"))).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn an_unmapped_route_is_refused_even_with_a_valid_token() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let lin = token("lin", &["librarian"]);
    for path in ["/admin", "/nowhere"] {
        let (status, body) = get(app, path, Some(&lin)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("no route maps this request"), "{body}");
    }
    let (status, body) = send(Method::POST, app, "/books/7", &[&format!("Bearer {lin}")]).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn a_public_route_passes_without_a_token() {
    let gatehouse = Gatehouse::start().await;
    let app = app(&gatehouse).await;
    let (status, body) = get(app, "/healthz", None).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}
