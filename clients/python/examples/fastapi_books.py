"""A books API on FastAPI, guarded by gatehouse: readers read, editors update.

Run it against a gatehouse serving ``examples/policies``:

    GATEHOUSE_TARGET=127.0.0.1:50051 uvicorn fastapi_books:app
"""

from __future__ import annotations

import os
from typing import Dict, Optional

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from gatehouse_client import Decision, Gatehouse, Resource
from gatehouse_client import fastapi as gatehouse

BOOKS: Dict[str, str] = {"42": "The Hitchhiker's Guide to the Galaxy"}


class Book(BaseModel):
    title: str


def book(request) -> Resource:
    return Resource("book", request.path_params["id"])


def create_app(client: Optional[Gatehouse] = None, *, fail: str = "closed") -> FastAPI:
    """The app, asking ``client`` (by default the gatehouse at ``$GATEHOUSE_TARGET``)."""
    app = FastAPI(title="books")
    app.state.gatehouse = client or Gatehouse(os.environ.get("GATEHOUSE_TARGET", "127.0.0.1:50051"))
    books = dict(BOOKS)

    @app.get("/books/{id}")
    def read_book(id: str, decision: Optional[Decision] = Depends(gatehouse.require("read", book, fail=fail))):
        user = decision.principal.user_id if decision and decision.principal else None
        return {"id": id, "title": books.get(id), "reader": user}

    @app.put("/books/{id}")
    def update_book(id: str, body: Book, _: object = Depends(gatehouse.require("update", book, fail=fail))):
        books[id] = body.title
        return {"id": id, "title": body.title}

    return app


app = create_app()
