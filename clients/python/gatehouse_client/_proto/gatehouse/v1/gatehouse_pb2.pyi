import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IssueTokenRequest(_message.Message):
    __slots__ = ("user_id", "expires_in_seconds", "claims", "roles", "groups")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    expires_in_seconds: int
    claims: _struct_pb2.Struct
    roles: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., expires_in_seconds: _Optional[int] = ..., claims: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., roles: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class IssueTokenResponse(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("principal",)
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal: Principal
    def __init__(self, principal: _Optional[_Union[Principal, _Mapping]] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("kind", "user_id", "roles", "groups", "scope", "claims", "issued_at", "expires_at", "channel_roles", "issuer")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Principal.Kind]
        USER: _ClassVar[Principal.Kind]
        SERVER: _ClassVar[Principal.Kind]
        SCOPED: _ClassVar[Principal.Kind]
        ANONYMOUS: _ClassVar[Principal.Kind]
        SERVICE: _ClassVar[Principal.Kind]
    KIND_UNSPECIFIED: Principal.Kind
    USER: Principal.Kind
    SERVER: Principal.Kind
    SCOPED: Principal.Kind
    ANONYMOUS: Principal.Kind
    SERVICE: Principal.Kind
    class ChannelRolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ROLES_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    kind: Principal.Kind
    user_id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    scope: Scope
    claims: _struct_pb2.Struct
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    channel_roles: _containers.ScalarMap[str, str]
    issuer: str
    def __init__(self, kind: _Optional[_Union[Principal.Kind, str]] = ..., user_id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., claims: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel_roles: _Optional[_Mapping[str, str]] = ..., issuer: _Optional[str] = ...) -> None: ...

class PrincipalInput(_message.Message):
    __slots__ = ("user_id", "roles", "groups", "channel_roles", "claims")
    class ChannelRolesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ROLES_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    groups: _containers.RepeatedScalarFieldContainer[str]
    channel_roles: _containers.ScalarMap[str, str]
    claims: _struct_pb2.Struct
    def __init__(self, user_id: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., groups: _Optional[_Iterable[str]] = ..., channel_roles: _Optional[_Mapping[str, str]] = ..., claims: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Scope(_message.Message):
    __slots__ = ("resource", "action", "feed_id", "user_id")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FEED_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    resource: str
    action: str
    feed_id: str
    user_id: str
    def __init__(self, resource: _Optional[str] = ..., action: _Optional[str] = ..., feed_id: _Optional[str] = ..., user_id: _Optional[str] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("kind", "id", "attributes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    attributes: _struct_pb2.Struct
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., attributes: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("token", "action", "resource", "context", "anonymous", "explain", "principal")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    token: str
    action: str
    resource: Resource
    context: _struct_pb2.Struct
    anonymous: bool
    explain: bool
    principal: PrincipalInput
    def __init__(self, token: _Optional[str] = ..., action: _Optional[str] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., anonymous: bool = ..., explain: bool = ..., principal: _Optional[_Union[PrincipalInput, _Mapping]] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "rule", "reason", "principal", "policy_revision", "explanation", "dry_run")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    rule: str
    reason: str
    principal: Principal
    policy_revision: str
    explanation: Explanation
    dry_run: bool
    def __init__(self, allowed: bool = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., policy_revision: _Optional[str] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ..., dry_run: bool = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("strategy", "entries")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    entries: _containers.RepeatedCompositeFieldContainer[TraceEntry]
    def __init__(self, strategy: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[TraceEntry, _Mapping]]] = ...) -> None: ...

class TraceEntry(_message.Message):
    __slots__ = ("name", "origin", "priority", "actions", "result", "detail", "policies", "details")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    origin: str
    priority: int
    actions: _containers.RepeatedScalarFieldContainer[str]
    result: str
    detail: str
    policies: _containers.RepeatedCompositeFieldContainer[PolicyResult]
    details: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., origin: _Optional[str] = ..., priority: _Optional[int] = ..., actions: _Optional[_Iterable[str]] = ..., result: _Optional[str] = ..., detail: _Optional[str] = ..., policies: _Optional[_Iterable[_Union[PolicyResult, _Mapping]]] = ..., details: _Optional[_Iterable[str]] = ...) -> None: ...

class PolicyResult(_message.Message):
    __slots__ = ("name", "granted", "negative", "detail", "children", "details")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    granted: bool
    negative: bool
    detail: str
    children: _containers.RepeatedCompositeFieldContainer[PolicyResult]
    details: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., granted: bool = ..., negative: bool = ..., detail: _Optional[str] = ..., children: _Optional[_Iterable[_Union[PolicyResult, _Mapping]]] = ..., details: _Optional[_Iterable[str]] = ...) -> None: ...

class CheckItem(_message.Message):
    __slots__ = ("action", "resource", "context")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    action: str
    resource: Resource
    context: _struct_pb2.Struct
    def __init__(self, action: _Optional[str] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CheckBatchRequest(_message.Message):
    __slots__ = ("token", "anonymous", "principal", "items", "explain")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    token: str
    anonymous: bool
    principal: PrincipalInput
    items: _containers.RepeatedCompositeFieldContainer[CheckItem]
    explain: bool
    def __init__(self, token: _Optional[str] = ..., anonymous: bool = ..., principal: _Optional[_Union[PrincipalInput, _Mapping]] = ..., items: _Optional[_Iterable[_Union[CheckItem, _Mapping]]] = ..., explain: bool = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("allowed", "rule", "reason", "explanation", "dry_run")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    rule: str
    reason: str
    explanation: Explanation
    dry_run: bool
    def __init__(self, allowed: bool = ..., rule: _Optional[str] = ..., reason: _Optional[str] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ..., dry_run: bool = ...) -> None: ...

class CheckBatchResponse(_message.Message):
    __slots__ = ("results", "principal", "policy_revision")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CheckResult]
    principal: Principal
    policy_revision: str
    def __init__(self, results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., policy_revision: _Optional[str] = ...) -> None: ...

class AllowedActionsRequest(_message.Message):
    __slots__ = ("token", "anonymous", "principal", "resource", "context")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    token: str
    anonymous: bool
    principal: PrincipalInput
    resource: Resource
    context: _struct_pb2.Struct
    def __init__(self, token: _Optional[str] = ..., anonymous: bool = ..., principal: _Optional[_Union[PrincipalInput, _Mapping]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class AllowedActionsResponse(_message.Message):
    __slots__ = ("actions", "principal", "policy_revision")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedScalarFieldContainer[str]
    principal: Principal
    policy_revision: str
    def __init__(self, actions: _Optional[_Iterable[str]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., policy_revision: _Optional[str] = ...) -> None: ...

class CapabilitiesRequest(_message.Message):
    __slots__ = ("token", "anonymous", "principal", "resources", "context", "actions")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    token: str
    anonymous: bool
    principal: PrincipalInput
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    context: _struct_pb2.Struct
    actions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, token: _Optional[str] = ..., anonymous: bool = ..., principal: _Optional[_Union[PrincipalInput, _Mapping]] = ..., resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., actions: _Optional[_Iterable[str]] = ...) -> None: ...

class ResourceCapabilities(_message.Message):
    __slots__ = ("kind", "id", "actions")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    id: str
    actions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., id: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ...) -> None: ...

class CapabilitiesResponse(_message.Message):
    __slots__ = ("resources", "principal", "policy_revision")
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[ResourceCapabilities]
    principal: Principal
    policy_revision: str
    def __init__(self, resources: _Optional[_Iterable[_Union[ResourceCapabilities, _Mapping]]] = ..., principal: _Optional[_Union[Principal, _Mapping]] = ..., policy_revision: _Optional[str] = ...) -> None: ...

class ReloadPoliciesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadPoliciesResponse(_message.Message):
    __slots__ = ("ok", "policy_revision", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    policy_revision: str
    error: str
    def __init__(self, ok: bool = ..., policy_revision: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class PolicyStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PolicyFile(_message.Message):
    __slots__ = ("path", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ...) -> None: ...

class IdentityStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IssuerKeyInfo(_message.Message):
    __slots__ = ("kid", "alg")
    KID_FIELD_NUMBER: _ClassVar[int]
    ALG_FIELD_NUMBER: _ClassVar[int]
    kid: str
    alg: str
    def __init__(self, kid: _Optional[str] = ..., alg: _Optional[str] = ...) -> None: ...

class IssuerStatus(_message.Message):
    __slots__ = ("issuer", "jwks_uri", "keys", "key_age_seconds", "fetches_ok", "fetches_failed", "last_error", "ready", "refetches", "refetches_suppressed")
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    JWKS_URI_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    KEY_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FETCHES_OK_FIELD_NUMBER: _ClassVar[int]
    FETCHES_FAILED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REFETCHES_FIELD_NUMBER: _ClassVar[int]
    REFETCHES_SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    issuer: str
    jwks_uri: str
    keys: _containers.RepeatedCompositeFieldContainer[IssuerKeyInfo]
    key_age_seconds: int
    fetches_ok: int
    fetches_failed: int
    last_error: str
    ready: bool
    refetches: int
    refetches_suppressed: int
    def __init__(self, issuer: _Optional[str] = ..., jwks_uri: _Optional[str] = ..., keys: _Optional[_Iterable[_Union[IssuerKeyInfo, _Mapping]]] = ..., key_age_seconds: _Optional[int] = ..., fetches_ok: _Optional[int] = ..., fetches_failed: _Optional[int] = ..., last_error: _Optional[str] = ..., ready: bool = ..., refetches: _Optional[int] = ..., refetches_suppressed: _Optional[int] = ...) -> None: ...

class SecretsStatus(_message.Message):
    __slots__ = ("key_ids", "file", "reloads_ok", "reloads_failed", "last_error", "loaded_at")
    KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    RELOADS_OK_FIELD_NUMBER: _ClassVar[int]
    RELOADS_FAILED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    key_ids: _containers.RepeatedScalarFieldContainer[str]
    file: str
    reloads_ok: int
    reloads_failed: int
    last_error: str
    loaded_at: _timestamp_pb2.Timestamp
    def __init__(self, key_ids: _Optional[_Iterable[str]] = ..., file: _Optional[str] = ..., reloads_ok: _Optional[int] = ..., reloads_failed: _Optional[int] = ..., last_error: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TlsStatus(_message.Message):
    __slots__ = ("enabled", "client_auth", "certificate_not_after", "reloads_ok", "reloads_failed")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CLIENT_AUTH_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    RELOADS_OK_FIELD_NUMBER: _ClassVar[int]
    RELOADS_FAILED_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    client_auth: str
    certificate_not_after: _timestamp_pb2.Timestamp
    reloads_ok: int
    reloads_failed: int
    def __init__(self, enabled: bool = ..., client_auth: _Optional[str] = ..., certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reloads_ok: _Optional[int] = ..., reloads_failed: _Optional[int] = ...) -> None: ...

class IdentityStatusResponse(_message.Message):
    __slots__ = ("issuers", "secrets", "tls")
    ISSUERS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    issuers: _containers.RepeatedCompositeFieldContainer[IssuerStatus]
    secrets: SecretsStatus
    tls: TlsStatus
    def __init__(self, issuers: _Optional[_Iterable[_Union[IssuerStatus, _Mapping]]] = ..., secrets: _Optional[_Union[SecretsStatus, _Mapping]] = ..., tls: _Optional[_Union[TlsStatus, _Mapping]] = ...) -> None: ...

class PolicyStatusResponse(_message.Message):
    __slots__ = ("policy_revision", "loaded_at", "policy_dir", "files", "reloads_ok", "reloads_failed", "last_error", "last_error_at")
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_DIR_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    RELOADS_OK_FIELD_NUMBER: _ClassVar[int]
    RELOADS_FAILED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    policy_revision: str
    loaded_at: _timestamp_pb2.Timestamp
    policy_dir: str
    files: _containers.RepeatedCompositeFieldContainer[PolicyFile]
    reloads_ok: int
    reloads_failed: int
    last_error: str
    last_error_at: _timestamp_pb2.Timestamp
    def __init__(self, policy_revision: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_dir: _Optional[str] = ..., files: _Optional[_Iterable[_Union[PolicyFile, _Mapping]]] = ..., reloads_ok: _Optional[int] = ..., reloads_failed: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Subject(_message.Message):
    __slots__ = ("user_id", "role")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    role: str
    def __init__(self, user_id: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class ExercisedPermissionsRequest(_message.Message):
    __slots__ = ("subject", "since")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    since: _timestamp_pb2.Timestamp
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExercisedPermission(_message.Message):
    __slots__ = ("action", "resource_kind", "resource_id_pattern", "pattern", "allowed", "count", "first_seen", "last_seen", "rule")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_KIND_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_PATTERN_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    action: str
    resource_kind: str
    resource_id_pattern: str
    pattern: bool
    allowed: bool
    count: int
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    rule: str
    def __init__(self, action: _Optional[str] = ..., resource_kind: _Optional[str] = ..., resource_id_pattern: _Optional[str] = ..., pattern: bool = ..., allowed: bool = ..., count: _Optional[int] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rule: _Optional[str] = ...) -> None: ...

class ExercisedPermissionsResponse(_message.Message):
    __slots__ = ("permissions", "entries_kept", "oldest_entry")
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_KEPT_FIELD_NUMBER: _ClassVar[int]
    OLDEST_ENTRY_FIELD_NUMBER: _ClassVar[int]
    permissions: _containers.RepeatedCompositeFieldContainer[ExercisedPermission]
    entries_kept: int
    oldest_entry: _timestamp_pb2.Timestamp
    def __init__(self, permissions: _Optional[_Iterable[_Union[ExercisedPermission, _Mapping]]] = ..., entries_kept: _Optional[int] = ..., oldest_entry: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SuggestPolicyRequest(_message.Message):
    __slots__ = ("subject", "since")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    subject: Subject
    since: _timestamp_pb2.Timestamp
    def __init__(self, subject: _Optional[_Union[Subject, _Mapping]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SuggestPolicyResponse(_message.Message):
    __slots__ = ("policy", "rules", "notes")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    policy: str
    rules: int
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, policy: _Optional[str] = ..., rules: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...
