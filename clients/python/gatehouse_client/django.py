"""Django integrations: a Django REST Framework permission class and a plain view decorator, with the
same behaviour as the FastAPI dependency (401 / 403 with the reason / 503 unless ``fail="open"``).

The client is ``client=`` (a ``Gatehouse`` or a function returning one) or, at request time, the
setting ``GATEHOUSE_CLIENT``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional, Union

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from gatehouse_client._web import Outcome, authorize, check_fail_mode
from gatehouse_client.client import Gatehouse
from gatehouse_client.models import Resource

__all__ = ["gatehouse_required", "permission"]

ClientSource = Union[Gatehouse, Callable[[], Gatehouse], None]
# One action, or one per HTTP method (a method missing from the map is denied).
Action = Union[str, Mapping[str, str]]


def _client(source: ClientSource) -> Gatehouse:
    if isinstance(source, Gatehouse):
        return source
    if source is not None:
        return source()
    client = getattr(settings, "GATEHOUSE_CLIENT", None)
    if client is None:
        raise RuntimeError("no gatehouse client: pass client= or set GATEHOUSE_CLIENT in the settings")
    return client


def _decide(request: HttpRequest, client: ClientSource, action: Action, resource: Resource, fail: str) -> Outcome:
    if not isinstance(action, str):
        action = action.get(request.method or "")
        if action is None:
            return Outcome(403, f"{request.method} is not allowed on this resource")
    headers = request.META.get("HTTP_AUTHORIZATION")
    return authorize(_client(client), [] if headers is None else [headers], action, resource, fail)


def gatehouse_required(
    action: Action,
    resource: Callable[..., Resource],
    *,
    client: ClientSource = None,
    fail: str = "closed",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorates a Django view: ``resource(request, *args, **kwargs)`` names what is acted on; a
    request gatehouse does not allow gets a JSON ``{"detail": ...}`` with 401, 403 or 503. An allowed
    request carries the decision in ``request.gatehouse_decision``."""
    check_fail_mode(fail)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            outcome = _decide(request, client, action, resource(request, *args, **kwargs), fail)
            if outcome.status != 200:
                response = JsonResponse({"detail": outcome.detail}, status=outcome.status)
                if outcome.status == 401:
                    response["WWW-Authenticate"] = "Bearer"
                return response
            request.gatehouse_decision = outcome.decision
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def permission(
    action: Action,
    resource: Callable[[Any, Any], Resource],
    *,
    client: ClientSource = None,
    fail: str = "closed",
) -> type:
    """A DRF permission class: ``permission_classes = [permission({"GET": "read", "PUT": "update"},
    lambda request, view: Resource("book", view.kwargs["pk"]))]``. ``resource(request, view)`` names
    what is acted on. The decision is kept in ``request.gatehouse_decision``.

    It raises its own 401 rather than DRF's ``NotAuthenticated``, which DRF turns into 403 unless an
    authentication class is configured."""
    from rest_framework import exceptions, permissions

    check_fail_mode(fail)

    class Unauthorized(exceptions.APIException):
        status_code = 401
        default_detail = "not authenticated"
        auth_header = "Bearer"  # read by DRF's exception handler for WWW-Authenticate

    class Unavailable(exceptions.APIException):
        status_code = 503
        default_detail = "authorization service unavailable"

    class GatehousePermission(permissions.BasePermission):
        def has_permission(self, request: Any, view: Any) -> bool:
            outcome = _decide(request, client, action, resource(request, view), fail)
            if outcome.status == 401:
                raise Unauthorized(outcome.detail)
            if outcome.status == 403:
                raise exceptions.PermissionDenied(outcome.detail)
            if outcome.status != 200:
                raise Unavailable(outcome.detail)
            request.gatehouse_decision = outcome.decision
            return True

    return GatehousePermission
