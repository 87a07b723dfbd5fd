"""What the framework integrations share: reading the caller's token and turning a gatehouse answer
into an HTTP outcome, so FastAPI and Django behave the same way."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import List, Optional

from gatehouse_client.client import Gatehouse
from gatehouse_client.errors import GatehouseError, InvalidRequest, PermissionDenied, Unauthenticated
from gatehouse_client.models import Decision, Resource

log = logging.getLogger("gatehouse_client")

FAIL_MODES = ("closed", "open")

# RFC 6750's b64token: a JWT always fits; anything else (spaces, commas of joined headers) is garbled.
_BEARER = re.compile(r"Bearer +([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


@dataclass(frozen=True)
class Outcome:
    """An HTTP answer: ``status`` 200 with the ``decision``, or 401/403/503 with a ``detail``."""

    status: int
    detail: str = ""
    decision: Optional[Decision] = None


def check_fail_mode(fail: str) -> str:
    if fail not in FAIL_MODES:
        raise ValueError(f"fail must be 'closed' or 'open', not {fail!r}")
    return fail


def bearer_token(values: List[str]) -> Optional[str]:
    """The token of the request's one ``Authorization: Bearer`` header, or ``None`` when there is no
    such header, more than one, or it is garbled. The header is the only place a token is read from:
    a second source (cookie, query string) would be a second way to get it wrong."""
    if len(values) != 1:
        return None
    match = _BEARER.fullmatch(values[0].strip())
    return match.group(1) if match else None


def authorize(
    client: Gatehouse, header_values: List[str], action: str, resource: Resource, fail: str
) -> Outcome:
    """Asks gatehouse whether the request's caller may perform ``action`` on ``resource``.

    401 without a usable token or when it does not verify, 403 on a denial (with the reason), and when
    gatehouse cannot answer: 503 (``fail="closed"``) or, only with ``fail="open"``, a logged pass.
    A malformed request (the application's own bug) is raised, not hidden behind a status.
    """
    token = bearer_token(header_values)
    if token is None:
        return Outcome(401, "missing or malformed Authorization: Bearer header")
    try:
        decision = client.check(action, resource, token=token)
    except Unauthenticated as err:
        return Outcome(401, err.message)
    except PermissionDenied as err:
        return Outcome(403, err.message)
    except InvalidRequest:
        raise
    except GatehouseError as err:
        if fail == "open":
            log.warning(
                "gatehouse could not decide (%s); allowing %s on %s %r because fail='open'",
                err.message, action, resource.kind, resource.id,
            )
            return Outcome(200, decision=None)
        return Outcome(503, "authorization service unavailable")
    if not decision.allowed:
        return Outcome(403, decision.reason)
    return Outcome(200, decision=decision)
