"""Every call of the client against a real gatehouse serving the example books policy."""

from __future__ import annotations

import time

import pytest

from gatehouse_client import (
    CheckItem,
    DeadlineExceeded,
    Gatehouse,
    GatehouseError,
    InvalidRequest,
    PermissionDenied,
    PrincipalInput,
    Resource,
    Unauthenticated,
    Unavailable,
)

BOOK = Resource("book", "42")


def test_check_allows_a_reader_to_read(client, tokens):
    decision = client.check("read", BOOK, token=tokens["reader"])
    assert decision.allowed
    assert decision.rule == "readers-read"
    assert decision.principal.kind == "USER"
    assert decision.principal.user_id == "rita"
    assert decision.principal.roles == ("reader",)
    assert len(decision.policy_revision) > 0


def test_check_denies_a_reader_an_update_as_a_decision(client, tokens):
    decision = client.check("update", BOOK, token=tokens["reader"], explain=True)
    assert not decision.allowed
    assert decision.rule == "default-deny"
    assert "rita" in decision.reason
    assert decision.explanation is not None
    assert any(e.name == "editors-update" for e in decision.explanation.entries)


def test_check_for_a_described_principal_with_the_server_token(client):
    decision = client.check("update", BOOK, principal=PrincipalInput("ed", roles=("editor",)))
    assert decision.allowed and decision.rule == "editors-update"
    assert decision.principal.user_id == "ed"


def test_describing_a_principal_needs_the_server_token(server):
    with Gatehouse(server.address, timeout=10) as anonymous_backend:
        with pytest.raises(Unauthenticated):
            anonymous_backend.check("read", BOOK, principal=PrincipalInput("ed", roles=("editor",)))


def test_anonymous_callers_are_denied(client):
    decision = client.check("read", BOOK, anonymous=True)
    assert not decision.allowed
    assert decision.principal.kind == "ANONYMOUS"


def test_check_batch_answers_in_order(client, tokens):
    batch = client.check_batch(
        [CheckItem("read", BOOK), CheckItem("update", BOOK), CheckItem("delete", BOOK), CheckItem("update", Resource("book", "7"))],
        token=tokens["editor"],
    )
    assert [d.allowed for d in batch.decisions] == [True, True, False, True]
    assert [d.rule for d in batch.decisions][:2] == ["readers-read", "editors-update"]
    assert batch.principal.user_id == "ed"
    assert all(d.policy_revision == batch.policy_revision for d in batch.decisions)


def test_allowed_actions(client, tokens):
    assert client.allowed_actions(BOOK, token=tokens["editor"]).actions == ("read", "update")
    assert client.allowed_actions(BOOK, token=tokens["reader"]).actions == ("read",)
    assert client.allowed_actions(BOOK, token=tokens["nobody"]).actions == ()


def test_capabilities(client, tokens):
    caps = client.capabilities([Resource("book", "1"), Resource("book", "2")], token=tokens["editor"])
    assert [(c.kind, c.id, c.actions) for c in caps.resources] == [
        ("book", "1", ("read", "update")),
        ("book", "2", ("read", "update")),
    ]
    only = client.capabilities([Resource("book", "1")], token=tokens["editor"], actions=["update", "delete"])
    assert only.resources[0].actions == ("update",)
    assert client.capabilities([Resource("book", "1")], token=tokens["reader"]).resources[0].actions == ("read",)


def test_issue_token_with_the_server_token_and_verify_it(client):
    issued = client.issue_token("iris", expires_in=3600, roles=["editor"], claims={"team": "fiction"})
    assert issued.token not in repr(issued)
    assert issued.expires_at is not None
    principal = client.verify(issued.token)
    assert principal.kind == "USER" and principal.user_id == "iris"
    assert principal.roles == ("editor",)
    assert principal.claims["team"] == "fiction"
    assert principal.expires_at == issued.expires_at
    assert client.check("update", BOOK, token=issued.token).allowed


def test_issue_token_that_never_expires(client):
    issued = client.issue_token("iris")
    assert issued.expires_at is None
    assert client.verify(issued.token).expires_at is None


def test_verify_a_server_token(client, tokens):
    assert client.verify(tokens["server"]).kind == "SERVER"


def test_issue_token_is_refused_with_a_user_token(server, tokens):
    with Gatehouse(server.address, server_token=tokens["reader"], timeout=10) as c:
        with pytest.raises(PermissionDenied) as raised:
            c.issue_token("mallory")
    assert tokens["reader"] not in str(raised.value) and tokens["reader"] not in repr(raised.value)
    assert raised.value.attempts == 1


def test_issue_token_without_any_server_token(server):
    with Gatehouse(server.address, timeout=10) as c:
        with pytest.raises(Unauthenticated):
            c.issue_token("mallory")


@pytest.mark.parametrize(
    "call",
    [
        lambda c, t: c.check("", BOOK, token=t),
        lambda c, t: c.check("read", Resource(""), token=t),
        lambda c, t: c.check("read", BOOK, token=t, anonymous=True),
        lambda c, t: c.check_batch([CheckItem("read", BOOK)] * 1001, token=t),
        lambda c, t: c.issue_token(""),
        lambda c, t: c.issue_token("iris", expires_in=-5),
        lambda c, t: c.issue_token("iris", claims={"roles": ["admin"]}),
    ],
    ids=["no-action", "no-kind", "token-and-anonymous", "batch-too-large", "no-user-id", "negative-ttl", "reserved-claim"],
)
def test_invalid_requests(client, tokens, call):
    with pytest.raises(InvalidRequest) as raised:
        call(client, tokens["reader"])
    assert raised.value.attempts == 1
    assert tokens["reader"] not in str(raised.value)


def test_a_badly_signed_token_is_unauthenticated_and_never_echoed(client, tokens):
    header, payload, signature = tokens["editor"].split(".")
    forged = ".".join([header, payload, signature[::-1]])
    with pytest.raises(Unauthenticated) as raised:
        client.check("update", BOOK, token=forged)
    for text in (str(raised.value), repr(raised.value)):
        assert forged not in text and signature not in text
    with pytest.raises(Unauthenticated):
        client.verify("not-a-token")


def test_a_garbage_token_is_unauthenticated(client):
    with pytest.raises(Unauthenticated):
        client.check("read", BOOK, token="garbage")


def test_the_server_token_is_not_in_the_client_repr(client, tokens):
    assert tokens["server"] not in repr(client)
    assert "<set>" in repr(client)


def test_errors_are_gatehouse_errors():
    for cls in (Unauthenticated, PermissionDenied, InvalidRequest, Unavailable, DeadlineExceeded):
        assert issubclass(cls, GatehouseError)


# --- deadlines and retries ---------------------------------------------------------------------------


def test_a_hung_server_is_a_deadline_exceeded_within_the_deadline(silent_listener):
    with Gatehouse(silent_listener, timeout=1.0, retries=5) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            c.check("read", BOOK, token="t")
        elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 5.0


def test_a_per_call_timeout_overrides_the_client_default(silent_listener):
    with Gatehouse(silent_listener, timeout=60, retries=0) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            c.verify("t", timeout=0.5)
    assert time.monotonic() - started < 5.0


def test_unavailable_is_retried_a_bounded_number_of_times(stopped_address):
    with Gatehouse(stopped_address, timeout=30, retries=3) as c:
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            c.check("read", BOOK, anonymous=True)
    assert raised.value.attempts == 4
    assert time.monotonic() - started < 15.0


def test_retries_stop_at_the_deadline(stopped_address):
    with Gatehouse(stopped_address, timeout=1.0, retries=1000) as c:
        started = time.monotonic()
        with pytest.raises((Unavailable, DeadlineExceeded)) as raised:
            c.check("read", BOOK, anonymous=True)
        elapsed = time.monotonic() - started
    assert 1 < raised.value.attempts < 1001
    assert elapsed < 5.0


def test_no_retries_means_one_attempt(stopped_address):
    with Gatehouse(stopped_address, timeout=10, retries=0) as c:
        with pytest.raises(Unavailable) as raised:
            c.check("read", BOOK, anonymous=True)
    assert raised.value.attempts == 1


def test_examples_policy_suite_passes(policy_dir):
    import subprocess

    from conftest import gatehouse_bin

    done = subprocess.run([gatehouse_bin(), "test", str(policy_dir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
