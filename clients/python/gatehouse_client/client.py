"""The gatehouse client: one typed method per decision RPC, with deadlines and careful retries."""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Tuple

import grpc

from gatehouse_client._proto.gatehouse.v1 import gatehouse_pb2 as pb
from gatehouse_client._proto.gatehouse.v1 import gatehouse_pb2_grpc as pb_grpc
from gatehouse_client.errors import DeadlineExceeded, from_rpc_error
from gatehouse_client.models import (
    AllowedActions,
    BatchDecision,
    Capabilities,
    CheckItem,
    Decision,
    IssuedToken,
    Principal,
    PrincipalInput,
    Resource,
    ResourceCapabilities,
    _time,
    from_explanation,
    from_principal,
    to_principal_input,
    to_resource,
    to_struct,
)

# Backoff between attempts after UNAVAILABLE: "full jitter" (a random sleep up to an exponentially
# growing cap), so many clients retrying after a sidecar restart do not arrive in lockstep.
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 1.0


class Gatehouse:
    """A client of one gatehouse server.

    ``target`` is ``host:port``. ``server_token`` is only sent where the server needs it: to
    ``issue_token`` and to describe a ``principal`` instead of passing a user token. User tokens go in
    each call's ``token`` argument, never in the client.

    Every call has one overall deadline (``timeout`` seconds, overridable per call) that covers all its
    attempts. Only UNAVAILABLE (nothing answered) is retried, at most ``retries`` more times with
    jittered backoff; an answer, a denial included, is never asked again.
    """

    def __init__(
        self,
        target: str,
        *,
        server_token: Optional[str] = None,
        timeout: float = 2.0,
        retries: int = 2,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self._server_token = server_token
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=list(options))
        else:
            self._channel = grpc.secure_channel(target, credentials, options=list(options))
        self._stub = pb_grpc.GatehouseStub(self._channel)

    def __repr__(self) -> str:
        token = "<set>" if self._server_token else None
        return f"Gatehouse(target={self.target!r}, server_token={token}, timeout={self.timeout}, retries={self.retries})"

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Gatehouse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- decisions -----------------------------------------------------------------------------------

    def check(
        self,
        action: str,
        resource: Resource,
        *,
        token: Optional[str] = None,
        anonymous: bool = False,
        principal: Optional[PrincipalInput] = None,
        context: Optional[Mapping[str, Any]] = None,
        explain: bool = False,
        timeout: Optional[float] = None,
    ) -> Decision:
        """May the caller (``token``, ``anonymous`` or a described ``principal``) perform ``action`` on
        ``resource``? A denial is ``Decision(allowed=False)``."""
        request = pb.CheckRequest(
            token=token or "",
            anonymous=anonymous,
            principal=to_principal_input(principal) if principal else None,
            action=action,
            resource=to_resource(resource),
            context=to_struct(context),
            explain=explain,
        )
        r = self._call("Check", request, token, principal is not None, timeout)
        return Decision(
            allowed=r.allowed,
            rule=r.rule,
            reason=r.reason,
            policy_revision=r.policy_revision,
            principal=from_principal(r),
            dry_run=r.dry_run,
            explanation=from_explanation(r),
        )

    def check_batch(
        self,
        items: Iterable[CheckItem],
        *,
        token: Optional[str] = None,
        anonymous: bool = False,
        principal: Optional[PrincipalInput] = None,
        explain: bool = False,
        timeout: Optional[float] = None,
    ) -> BatchDecision:
        """Up to 1,000 questions about one caller in one call, answered in order."""
        request = pb.CheckBatchRequest(
            token=token or "",
            anonymous=anonymous,
            principal=to_principal_input(principal) if principal else None,
            items=[
                pb.CheckItem(action=i.action, resource=to_resource(i.resource), context=to_struct(i.context))
                for i in items
            ],
            explain=explain,
        )
        r = self._call("CheckBatch", request, token, principal is not None, timeout)
        who = from_principal(r)
        return BatchDecision(
            decisions=tuple(
                Decision(
                    allowed=d.allowed,
                    rule=d.rule,
                    reason=d.reason,
                    policy_revision=r.policy_revision,
                    principal=who,
                    dry_run=d.dry_run,
                    explanation=from_explanation(d),
                )
                for d in r.results
            ),
            principal=who,
            policy_revision=r.policy_revision,
        )

    def allowed_actions(
        self,
        resource: Resource,
        *,
        token: Optional[str] = None,
        anonymous: bool = False,
        principal: Optional[PrincipalInput] = None,
        context: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> AllowedActions:
        """The actions the policy set declares for the resource's kind that the caller may perform."""
        request = pb.AllowedActionsRequest(
            token=token or "",
            anonymous=anonymous,
            principal=to_principal_input(principal) if principal else None,
            resource=to_resource(resource),
            context=to_struct(context),
        )
        r = self._call("AllowedActions", request, token, principal is not None, timeout)
        return AllowedActions(tuple(r.actions), from_principal(r), r.policy_revision)

    def capabilities(
        self,
        resources: Iterable[Resource],
        *,
        token: Optional[str] = None,
        anonymous: bool = False,
        principal: Optional[PrincipalInput] = None,
        actions: Sequence[str] = (),
        context: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> Capabilities:
        """For each of up to 1,000 resources, the actions the caller may perform (only ``actions``, when
        given): what a screen listing many resources needs to decide which buttons to show."""
        request = pb.CapabilitiesRequest(
            token=token or "",
            anonymous=anonymous,
            principal=to_principal_input(principal) if principal else None,
            resources=[to_resource(x) for x in resources],
            context=to_struct(context),
            actions=list(actions),
        )
        r = self._call("Capabilities", request, token, principal is not None, timeout)
        return Capabilities(
            resources=tuple(ResourceCapabilities(c.kind, c.id, tuple(c.actions)) for c in r.resources),
            principal=from_principal(r),
            policy_revision=r.policy_revision,
        )

    # --- tokens --------------------------------------------------------------------------------------

    def issue_token(
        self,
        user_id: str,
        *,
        expires_in: Optional[float] = None,
        roles: Sequence[str] = (),
        groups: Sequence[str] = (),
        claims: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> IssuedToken:
        """Mints a user token (server-side only: needs the client's ``server_token``).
        ``expires_in`` is in seconds; ``None`` mints a token that never expires, as Stream does."""
        request = pb.IssueTokenRequest(
            user_id=user_id,
            expires_in_seconds=int(expires_in) if expires_in is not None else 0,
            roles=list(roles),
            groups=list(groups),
            claims=to_struct(claims),
        )
        r = self._call("IssueToken", request, None, True, timeout)
        return IssuedToken(token=r.token, expires_at=_time(r, "expires_at"))

    def verify(self, token: str, *, timeout: Optional[float] = None) -> Optional[Principal]:
        """The principal a token identifies; raises ``Unauthenticated`` when it does not verify."""
        r = self._call("Verify", pb.VerifyRequest(token=token), token, False, timeout)
        return from_principal(r)

    # --- transport -----------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        request: Any,
        token: Optional[str],
        needs_server_token: bool,
        timeout: Optional[float],
    ) -> Any:
        """Sends ``request`` until it is answered, retrying only UNAVAILABLE, within one deadline."""
        rpc: Callable[..., Any] = getattr(self._stub, method)
        metadata = []
        if needs_server_token and self._server_token:
            metadata.append(("authorization", f"Bearer {self._server_token}"))
        secrets = (token, self._server_token)
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        attempts = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"{method}: no answer within the deadline ({attempts} attempts)",
                    code=grpc.StatusCode.DEADLINE_EXCEEDED,
                    attempts=attempts,
                )
            attempts += 1
            try:
                return rpc(request, timeout=remaining, metadata=metadata)
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else None
                if code == grpc.StatusCode.UNAVAILABLE and attempts <= self.retries:
                    pause = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempts - 1)))
                    if time.monotonic() + pause < deadline:
                        time.sleep(pause)
                        continue
                raise from_rpc_error(err, method=method, attempts=attempts, secrets=secrets) from None
