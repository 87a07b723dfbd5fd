"""FastAPI integration: a dependency that lets a request through only when gatehouse allows it.

    from gatehouse_client import fastapi as gatehouse

    @app.put("/books/{id}")
    def update_book(id: str, decision=Depends(gatehouse.require(
            "update", lambda request: Resource("book", request.path_params["id"])))):
        ...

The client is ``client=`` or ``app.state.gatehouse``.
"""

from __future__ import annotations

from typing import Callable, Optional

from fastapi import HTTPException, Request

from gatehouse_client._web import authorize, check_fail_mode
from gatehouse_client.client import Gatehouse
from gatehouse_client.models import Decision, Resource

__all__ = ["require"]


def require(
    action: str,
    resource: Callable[[Request], Resource],
    *,
    client: Optional[Gatehouse] = None,
    fail: str = "closed",
) -> Callable[[Request], Optional[Decision]]:
    """A dependency deciding ``action`` on ``resource(request)`` for the caller of the request's
    ``Authorization: Bearer`` token. It answers 401 (no usable token), 403 (denied, with the reason) or
    503 (gatehouse unreachable, unless ``fail="open"``), and otherwise returns the ``Decision``
    (``None`` when let through by ``fail="open"``).

    The dependency is synchronous on purpose: FastAPI runs it in its thread pool, so the blocking gRPC
    call never stalls the event loop.
    """
    check_fail_mode(fail)

    def dependency(request: Request) -> Optional[Decision]:
        gatehouse = client or getattr(request.app.state, "gatehouse", None)
        if gatehouse is None:
            raise RuntimeError("no gatehouse client: pass client= or set app.state.gatehouse")
        outcome = authorize(
            gatehouse, request.headers.getlist("authorization"), action, resource(request), fail
        )
        if outcome.status == 401:
            raise HTTPException(401, outcome.detail, headers={"WWW-Authenticate": "Bearer"})
        if outcome.status != 200:
            raise HTTPException(outcome.status, outcome.detail)
        return outcome.decision

    return dependency
