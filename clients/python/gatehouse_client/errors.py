"""Typed errors for gatehouse calls.

A denial is not an error: ``check`` returns ``Decision(allowed=False)``. These exceptions are for calls
that could not be decided at all, so a caller can tell "the user may not" (403) from "the user is not
who they claim" (401) and "we could not ask" (503) without reading gRPC status codes.
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

import grpc

# Three base64url segments separated by dots: the shape of a JWT (the third may be empty for
# development tokens). Anything of that shape is cut out of messages before they reach a log.
_JWT = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def redact(text: str, secrets: Iterable[Optional[str]] = ()) -> str:
    """Removes the given secrets, and anything shaped like a JWT, from ``text``.

    The server promises never to echo a token, but messages end up in logs and tracebacks, so the
    client does not rely on that alone.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _JWT.sub("[redacted]", text)


class GatehouseError(Exception):
    """A gatehouse call failed without a decision.

    ``code`` is the gRPC status (``None`` for errors raised before a call), ``attempts`` how many times
    the call was sent. The message never contains a token.
    """

    def __init__(self, message: str, *, code: Optional[grpc.StatusCode] = None, attempts: int = 0):
        super().__init__(message)
        self.message = message
        self.code = code
        self.attempts = attempts

    def __repr__(self) -> str:
        code = self.code.name if self.code is not None else None
        return f"{type(self).__name__}({self.message!r}, code={code}, attempts={self.attempts})"


class Unauthenticated(GatehouseError):
    """The token is missing, malformed, expired, badly signed or revoked (UNAUTHENTICATED)."""


class PermissionDenied(GatehouseError):
    """The caller's credentials may not make this call, e.g. ``issue_token`` with a user token."""


class InvalidRequest(GatehouseError):
    """The request is malformed: no action, no resource kind, too many items (INVALID_ARGUMENT)."""


class Unavailable(GatehouseError):
    """Gatehouse could not be reached, even after the retries the deadline allowed (UNAVAILABLE)."""


class DeadlineExceeded(GatehouseError):
    """No answer within the call's deadline (DEADLINE_EXCEEDED)."""


_BY_CODE = {
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(
    err: grpc.RpcError, *, method: str, attempts: int, secrets: Iterable[Optional[str]] = ()
) -> GatehouseError:
    """The typed error for a failed call, with a message safe to log."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else ""
    details = redact(details or code.name.lower().replace("_", " "), secrets)
    cls = _BY_CODE.get(code, GatehouseError)
    suffix = f" (after {attempts} attempts)" if attempts > 1 else ""
    return cls(f"{method}: {details}{suffix}", code=code, attempts=attempts)
