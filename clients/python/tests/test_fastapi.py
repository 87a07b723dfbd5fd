"""The FastAPI example allows and denies real requests through its test client against gatehouse."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from fastapi_books import create_app
from gatehouse_client import Gatehouse


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def books(server):
    with Gatehouse(server.address, timeout=10) as client:
        yield TestClient(create_app(client))


def test_a_reader_reads(books, tokens):
    r = books.get("/books/42", headers=bearer(tokens["reader"]))
    assert r.status_code == 200, r.text
    assert r.json()["reader"] == "rita"


def test_a_reader_may_not_update(books, tokens):
    r = books.put("/books/42", json={"title": "x"}, headers=bearer(tokens["reader"]))
    assert r.status_code == 403
    assert "rita" in r.json()["detail"] and "update" in r.json()["detail"]


def test_an_editor_updates(books, tokens):
    r = books.put("/books/42", json={"title": "Mostly Harmless"}, headers=bearer(tokens["editor"]))
    assert r.status_code == 200, r.text
    assert books.get("/books/42", headers=bearer(tokens["editor"])).json()["title"] == "Mostly Harmless"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic cml0YTpwYXNzd29yZA=="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer two words"},
    ],
    ids=["missing", "basic", "empty-bearer", "garbled"],
)
def test_no_usable_token_is_401(books, headers):
    r = books.get("/books/42", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_two_authorization_headers_are_401(books, tokens):
    r = books.get("/books/42", headers=[("Authorization", f"Bearer {tokens['reader']}")] * 2)
    assert r.status_code == 401


def test_the_token_is_read_from_the_header_only(server, tokens):
    with Gatehouse(server.address, timeout=10) as client:
        books = TestClient(create_app(client), cookies={"token": tokens["reader"]})
        r = books.get("/books/42", params={"token": tokens["reader"]})
    assert r.status_code == 401


def test_a_token_that_does_not_verify_is_401_without_echoing_it(books, tokens):
    forged = tokens["editor"][:-4] + "AAAA"
    r = books.get("/books/42", headers=bearer(forged))
    assert r.status_code == 401
    assert forged not in r.text


def test_gatehouse_down_is_503_when_failing_closed(stopped_address, tokens):
    with Gatehouse(stopped_address, timeout=1, retries=1) as client:
        r = TestClient(create_app(client)).get("/books/42", headers=bearer(tokens["reader"]))
    assert r.status_code == 503


def test_gatehouse_down_is_let_through_when_failing_open(stopped_address, tokens, caplog):
    with Gatehouse(stopped_address, timeout=1, retries=1) as client:
        with caplog.at_level(logging.WARNING, logger="gatehouse_client"):
            r = TestClient(create_app(client, fail="open")).put(
                "/books/42", json={"title": "x"}, headers=bearer(tokens["reader"])
            )
    assert r.status_code == 200, r.text
    assert "fail='open'" in caplog.text
    assert tokens["reader"] not in caplog.text


def test_failing_open_still_refuses_a_missing_token(stopped_address):
    with Gatehouse(stopped_address, timeout=1, retries=0) as client:
        r = TestClient(create_app(client, fail="open")).get("/books/42")
    assert r.status_code == 401


def test_an_unknown_failure_mode_is_refused():
    from gatehouse_client.fastapi import require

    with pytest.raises(ValueError):
        require("read", lambda request: None, fail="ajar")
