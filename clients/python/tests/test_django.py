"""The Django + DRF example allows and denies real requests through Django's test client against
gatehouse, through both the DRF permission class and the plain view decorator."""

from __future__ import annotations

import json
import logging

import pytest

import django_books  # configures Django  # noqa: F401
from django.test import Client, RequestFactory, override_settings
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView
from rest_framework.response import Response

from gatehouse_client import Gatehouse, Resource
from gatehouse_client.django import gatehouse_required, permission


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def books(server):
    with Gatehouse(server.address, timeout=10) as client:
        with override_settings(GATEHOUSE_CLIENT=client):
            yield Client()


@pytest.mark.parametrize("path", ["/books/42", "/plain/books/42"])
def test_a_reader_reads(books, tokens, path):
    r = books.get(path, **bearer(tokens["reader"]))
    assert r.status_code == 200, r.content
    assert r.json()["title"]


def test_the_drf_view_sees_the_decision(books, tokens):
    assert books.get("/books/42", **bearer(tokens["editor"])).json()["reader"] == "ed"


def test_a_reader_may_not_update(books, tokens):
    r = books.put("/books/42", data=json.dumps({"title": "x"}), content_type="application/json", **bearer(tokens["reader"]))
    assert r.status_code == 403
    assert "rita" in r.json()["detail"]


def test_an_editor_updates(books, tokens):
    r = books.put(
        "/books/7", data=json.dumps({"title": "Mostly Harmless"}), content_type="application/json", **bearer(tokens["editor"])
    )
    assert r.status_code == 200, r.content
    assert books.get("/plain/books/7", **bearer(tokens["reader"])).json()["title"] == "Mostly Harmless"


def test_a_method_without_an_action_is_denied(books, tokens):
    assert books.delete("/books/42", **bearer(tokens["editor"])).status_code == 403


def test_a_user_without_a_role_is_denied_by_the_decorator(books, tokens):
    r = books.get("/plain/books/42", **bearer(tokens["nobody"]))
    assert r.status_code == 403
    assert "nemo" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/books/42", "/plain/books/42"])
@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Token abc"}, {"HTTP_AUTHORIZATION": "Bearer a, Bearer b"}])
def test_no_usable_token_is_401(books, path, headers):
    r = books.get(path, **headers)
    assert r.status_code == 401
    assert r["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/books/42", "/plain/books/42"])
def test_a_token_that_does_not_verify_is_401(books, tokens, path):
    forged = tokens["reader"][:-4] + "AAAA"
    r = books.get(path, **bearer(forged))
    assert r.status_code == 401
    assert forged.encode() not in r.content


# --- failure mode, with views built for a gatehouse that has stopped ---------------------------------


def views(client: Gatehouse, fail: str):
    @gatehouse_required("read", lambda request, id: Resource("book", id), client=client, fail=fail)
    def plain(request, id):
        from django.http import JsonResponse

        return JsonResponse({"id": id})

    class Drf(APIView):
        permission_classes = [permission("read", lambda request, view: Resource("book", view.kwargs["id"]), client=client, fail=fail)]

        def get(self, request, id):
            return Response({"id": id})

    return plain, Drf.as_view()


@pytest.mark.parametrize("fail, status", [("closed", 503), ("open", 200)])
def test_gatehouse_down(stopped_address, tokens, caplog, fail, status):
    with Gatehouse(stopped_address, timeout=1, retries=1) as client:
        plain, drf = views(client, fail)
        with caplog.at_level(logging.WARNING, logger="gatehouse_client"):
            answers = [
                plain(RequestFactory().get("/b/42", **bearer(tokens["reader"])), id="42"),
                drf(APIRequestFactory().get("/b/42", **bearer(tokens["reader"])), id="42"),
            ]
    assert [a.status_code for a in answers] == [status, status]
    assert tokens["reader"] not in caplog.text
    assert ("fail='open'" in caplog.text) == (fail == "open")


def test_failing_open_still_refuses_a_missing_token(stopped_address):
    with Gatehouse(stopped_address, timeout=1, retries=0) as client:
        plain, drf = views(client, "open")
        assert plain(RequestFactory().get("/b/42"), id="42").status_code == 401
        assert drf(APIRequestFactory().get("/b/42"), id="42").status_code == 401
