"""The values going in and out of gatehouse calls, as plain dataclasses.

Callers work with these instead of protobuf messages, so their code type-checks and never depends on
the generated module's layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Tuple

from google.protobuf import json_format, struct_pb2

from gatehouse_client._proto.gatehouse.v1 import gatehouse_pb2 as pb


@dataclass(frozen=True)
class Resource:
    """What is acted on: a kind declared by the policy set (``book``), its id, and the attributes
    the rules read (``owner``, ``user_id``, ...)."""

    kind: str
    id: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrincipalInput:
    """A principal described by a trusted backend instead of a token ("may jack do this?").

    Only accepted when the client has a ``server_token``."""

    user_id: str
    roles: Tuple[str, ...] = ()
    groups: Tuple[str, ...] = ()
    channel_roles: Mapping[str, str] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckItem:
    """One question of a ``check_batch``."""

    action: str
    resource: Resource
    context: Optional[Mapping[str, Any]] = None


@dataclass(frozen=True)
class Scope:
    """A scope token's scope, as written in its claims: ``*`` or a comma list."""

    resource: str
    action: str
    feed_id: str
    user_id: str


@dataclass(frozen=True)
class Principal:
    """Who the server decided for. ``kind`` is ``USER``, ``SERVER``, ``SCOPED``, ``ANONYMOUS`` or
    ``SERVICE``."""

    kind: str
    user_id: str
    roles: Tuple[str, ...]
    groups: Tuple[str, ...]
    channel_roles: Mapping[str, str]
    claims: Mapping[str, Any]
    scope: Optional[Scope]
    issued_at: Optional[datetime]
    expires_at: Optional[datetime]
    issuer: str


@dataclass(frozen=True)
class PolicyResult:
    name: str
    granted: bool
    negative: bool
    detail: str
    details: Tuple[str, ...]
    children: Tuple["PolicyResult", ...]


@dataclass(frozen=True)
class TraceEntry:
    """One candidate rule, chat policy or permission and what it said."""

    name: str
    origin: str
    priority: int
    actions: Tuple[str, ...]
    result: str
    detail: str
    details: Tuple[str, ...]
    policies: Tuple[PolicyResult, ...]


@dataclass(frozen=True)
class Explanation:
    strategy: str
    entries: Tuple[TraceEntry, ...]


@dataclass(frozen=True)
class Decision:
    """The answer to "may this caller do this?". A denial is ``allowed=False`` with the deciding
    ``rule`` and a ``reason`` a person can act on; ``dry_run`` means the set is permissive and
    enforcement would have denied."""

    allowed: bool
    rule: str
    reason: str
    policy_revision: str
    principal: Optional[Principal] = None
    dry_run: bool = False
    explanation: Optional[Explanation] = None


@dataclass(frozen=True)
class BatchDecision:
    """The answers of ``check_batch``, in the order of the items."""

    decisions: Tuple[Decision, ...]
    principal: Optional[Principal]
    policy_revision: str


@dataclass(frozen=True)
class AllowedActions:
    actions: Tuple[str, ...]
    principal: Optional[Principal]
    policy_revision: str


@dataclass(frozen=True)
class ResourceCapabilities:
    kind: str
    id: str
    actions: Tuple[str, ...]


@dataclass(frozen=True)
class Capabilities:
    """For each resource asked about, in order, the actions the principal may perform on it."""

    resources: Tuple[ResourceCapabilities, ...]
    principal: Optional[Principal]
    policy_revision: str


@dataclass(frozen=True)
class IssuedToken:
    """A minted user token. The token itself is left out of the repr so it never lands in a log."""

    token: str = field(repr=False)
    expires_at: Optional[datetime]


# --- conversions -------------------------------------------------------------------------------------


def to_struct(values: Optional[Mapping[str, Any]]) -> Optional[struct_pb2.Struct]:
    if not values:
        return None
    out = struct_pb2.Struct()
    out.update(dict(values))
    return out


def from_struct(message: struct_pb2.Struct) -> Dict[str, Any]:
    return json_format.MessageToDict(message)


def to_resource(resource: Resource) -> pb.Resource:
    return pb.Resource(kind=resource.kind, id=resource.id, attributes=to_struct(resource.attributes))


def to_principal_input(principal: PrincipalInput) -> pb.PrincipalInput:
    return pb.PrincipalInput(
        user_id=principal.user_id,
        roles=list(principal.roles),
        groups=list(principal.groups),
        channel_roles=dict(principal.channel_roles),
        claims=to_struct(principal.claims),
    )


def _time(message: Any, name: str) -> Optional[datetime]:
    if not message.HasField(name):
        return None
    return getattr(message, name).ToDatetime(tzinfo=timezone.utc)


def from_principal(message: Any, name: str = "principal") -> Optional[Principal]:
    if not message.HasField(name):
        return None
    p = getattr(message, name)
    scope = p.scope if p.HasField("scope") else None
    return Principal(
        kind=pb.Principal.Kind.Name(p.kind),
        user_id=p.user_id,
        roles=tuple(p.roles),
        groups=tuple(p.groups),
        channel_roles=dict(p.channel_roles),
        claims=from_struct(p.claims),
        scope=Scope(scope.resource, scope.action, scope.feed_id, scope.user_id) if scope else None,
        issued_at=_time(p, "issued_at"),
        expires_at=_time(p, "expires_at"),
        issuer=p.issuer,
    )


def _policy_result(p: pb.PolicyResult) -> PolicyResult:
    return PolicyResult(
        name=p.name,
        granted=p.granted,
        negative=p.negative,
        detail=p.detail,
        details=tuple(p.details),
        children=tuple(_policy_result(c) for c in p.children),
    )


def from_explanation(message: Any) -> Optional[Explanation]:
    if not message.HasField("explanation"):
        return None
    e = message.explanation
    return Explanation(
        strategy=e.strategy,
        entries=tuple(
            TraceEntry(
                name=t.name,
                origin=t.origin,
                priority=t.priority,
                actions=tuple(t.actions),
                result=t.result,
                detail=t.detail,
                details=tuple(t.details),
                policies=tuple(_policy_result(p) for p in t.policies),
            )
            for t in e.entries
        ),
    )
