"""A books API in one file with Django and Django REST Framework, guarded by gatehouse: readers read,
editors update. ``/books/<id>`` is a DRF view with the permission class, ``/plain/books/<id>`` a plain
Django view with the decorator.

Run it against a gatehouse serving ``examples/policies``:

    GATEHOUSE_TARGET=127.0.0.1:50051 python django_books.py runserver
"""

from __future__ import annotations

import os
import sys

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="books-example-not-secret",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "rest_framework"],
        MIDDLEWARE=[],
        DATABASES={},
        # gatehouse identifies callers: DRF's own authentication (sessions, basic auth, users) is off.
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [],
            "DEFAULT_PERMISSION_CLASSES": [],
            "UNAUTHENTICATED_USER": None,
        },
        GATEHOUSE_CLIENT=None,  # set below, once gatehouse_client can be imported
    )

import django  # noqa: E402

django.setup()

from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from gatehouse_client import Gatehouse, Resource  # noqa: E402
from gatehouse_client.django import gatehouse_required, permission  # noqa: E402

if settings.GATEHOUSE_CLIENT is None:
    settings.GATEHOUSE_CLIENT = Gatehouse(os.environ.get("GATEHOUSE_TARGET", "127.0.0.1:50051"))

BOOKS = {"42": "The Hitchhiker's Guide to the Galaxy"}


class BookDetail(APIView):
    permission_classes = [
        permission({"GET": "read", "PUT": "update"}, lambda request, view: Resource("book", view.kwargs["id"]))
    ]

    def get(self, request, id):
        return Response({"id": id, "title": BOOKS.get(id), "reader": request.gatehouse_decision.principal.user_id})

    def put(self, request, id):
        BOOKS[id] = request.data["title"]
        return Response({"id": id, "title": BOOKS[id]})


@gatehouse_required("read", lambda request, id: Resource("book", id))
def plain_book(request, id):
    return JsonResponse({"id": id, "title": BOOKS.get(id)})


urlpatterns = [
    path("books/<str:id>", BookDetail.as_view()),
    path("plain/books/<str:id>", plain_book),
]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
