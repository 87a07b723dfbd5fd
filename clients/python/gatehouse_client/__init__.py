"""Python client of gatehouse, the authorization sidecar (gRPC service ``gatehouse.v1.Gatehouse``).

    from gatehouse_client import Gatehouse, Resource

    with Gatehouse("127.0.0.1:50051") as gatehouse:
        decision = gatehouse.check("update", Resource("book", "42"), token=user_token)
        if not decision.allowed:
            ...  # decision.reason says why

Framework integrations live in ``gatehouse_client.fastapi`` and ``gatehouse_client.django``.
"""

from gatehouse_client.client import Gatehouse
from gatehouse_client.errors import (
    DeadlineExceeded,
    GatehouseError,
    InvalidRequest,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from gatehouse_client.models import (
    AllowedActions,
    BatchDecision,
    Capabilities,
    CheckItem,
    Decision,
    Explanation,
    IssuedToken,
    Principal,
    PrincipalInput,
    Resource,
    ResourceCapabilities,
    Scope,
    TraceEntry,
)

__all__ = [
    "AllowedActions",
    "BatchDecision",
    "Capabilities",
    "CheckItem",
    "DeadlineExceeded",
    "Decision",
    "Explanation",
    "Gatehouse",
    "GatehouseError",
    "InvalidRequest",
    "IssuedToken",
    "PermissionDenied",
    "Principal",
    "PrincipalInput",
    "Resource",
    "ResourceCapabilities",
    "Scope",
    "TraceEntry",
    "Unauthenticated",
    "Unavailable",
]
