//! `Local` against `Remote`: the same tokens and questions get the same answers, in process as from
//! the server, and the same responses through the layer.

use gatehouse_tower::{Credential, Decider, GatehouseLayer, Question, Resource, Token};
use reqwest::Method;

use crate::axum_app;
use crate::common::{Gatehouse, expired_token, foreign_token, send, serve_axum, token};

fn questions() -> Vec<Question> {
    let credentials = [
        Credential::Token(Token::new(token("jack", &["reader"]))),
        Credential::Token(Token::new(token("lin", &["librarian"]))),
        Credential::Token(Token::new(token("olga", &["operator"]))),
        Credential::Token(Token::new(expired_token("lin"))),
        Credential::Token(Token::new(foreign_token("lin"))),
        Credential::Token(Token::new("not.a.token")),
        Credential::Anonymous,
    ];
    let asks = [
        ("read", Resource::new("book", "7")),
        ("delete", Resource::new("book", "a:b")),
        ("browse", Resource::new("catalog", "")),
        ("check", Resource::new("health", "grpc")),
        ("burn", Resource::new("book", "7")),
        ("read", Resource::new("", "7")),
        (
            "read",
            Resource::new("book", "7").attribute("owner", "jack"),
        ),
    ];
    let mut questions = Vec::new();
    for credential in &credentials {
        for (action, resource) in &asks {
            questions.push(Question {
                credential: credential.clone(),
                action: (*action).to_owned(),
                resource: resource.clone(),
            });
        }
    }
    questions
}

#[tokio::test]
async fn local_gives_the_same_answers_as_remote() {
    let gatehouse = Gatehouse::start().await;
    let remote = gatehouse.remote();
    let local = gatehouse.local();
    let (mut allowed, mut denied, mut refused) = (0, 0, 0);
    for question in questions() {
        let from_server = remote.decide(&question).await;
        let in_process = local.decide(&question).await;
        assert_eq!(in_process, from_server, "{question:?}");
        match from_server {
            Ok(answer) if answer.allowed => allowed += 1,
            Ok(_) => denied += 1,
            Err(_) => refused += 1,
        }
    }
    // The questions cover every kind of answer, so agreeing is not agreeing on one.
    assert!(
        allowed >= 5 && denied >= 5 && refused >= 10,
        "{allowed} {denied} {refused}"
    );
}

#[tokio::test]
async fn the_layer_answers_the_same_with_local_as_with_remote() {
    let gatehouse = Gatehouse::start().await;
    let remote_app =
        serve_axum(GatehouseLayer::new(gatehouse.remote(), axum_app::routes()).unwrap()).await;
    let local_app =
        serve_axum(GatehouseLayer::new(gatehouse.local(), axum_app::routes()).unwrap()).await;
    let jack = format!("Bearer {}", token("jack", &["reader"]));
    let lin = format!("Bearer {}", token("lin", &["librarian"]));
    let expired = format!("Bearer {}", expired_token("lin"));
    let requests: Vec<(Method, &str, Vec<&str>)> = vec![
        (Method::GET, "/books/7", vec![&jack]),
        (Method::DELETE, "/books/7", vec![&jack]),
        (Method::DELETE, "/books/7", vec![&lin]),
        (Method::GET, "/books/7", vec![&expired]),
        (Method::GET, "/books/7", vec![]),
        (Method::GET, "/catalog", vec![]),
        (Method::GET, "/admin", vec![&lin]),
    ];
    let mut statuses = Vec::new();
    for (method, path, authorization) in requests {
        let from_remote = send(method.clone(), remote_app, path, &authorization).await;
        let from_local = send(method.clone(), local_app, path, &authorization).await;
        assert_eq!(from_local, from_remote, "{method} {path}");
        statuses.push(from_remote.0);
    }
    assert_eq!(statuses, [200, 403, 200, 401, 401, 200, 403]);
}
