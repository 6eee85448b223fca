"""Sign-in's building blocks called directly against the real PostgreSQL: sessions (expiry,
sliding, revocation), who may enter (allowlist, admins, invites), personal access tokens
and the OpenID Connect client. No app: the fast checks `make mutation-db GROUP=auth` runs
on app/auth/ (docs/mutation.md); tests/test_auth_routes.py and test_auth_oidc.py go
through HTTP and a real provider."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth import access, oidc, sessions, tokens
from app.auth.access import AccessDenied, Identity
from app.db import make_async_engine
from app.models import utcnow
from tests.conftest import make_settings

T = TypeVar("T")


def _run(db_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``work`` in one committed transaction on the test database."""

    async def go() -> T:
        engine = make_async_engine(db_url)
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                async with session.begin():
                    return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def _user(session: AsyncSession, email: str | None = None) -> uuid.UUID:
    user_id = uuid.uuid4()
    await session.execute(
        text("INSERT INTO users (id, email, name, created_at) VALUES (:i, :e, 'Ada', now())"),
        {"i": user_id, "e": email or f"{user_id.hex}@example.com"},
    )
    return user_id


async def _one(session: AsyncSession, sql: str, **params: object) -> Any:
    return (await session.execute(text(sql), params)).one()


# --- sessions


IDLE, MAX_AGE = timedelta(minutes=600), timedelta(hours=24)


@pytest.mark.parametrize(("idle", "expires"), [(IDLE, IDLE), (timedelta(hours=30), MAX_AGE)])
def test_a_new_session_stores_only_the_hash_and_expires_idle_or_at_its_maximum_age(
    db_url: str, idle: timedelta, expires: timedelta
) -> None:
    async def work(session: AsyncSession) -> tuple[str, Any, uuid.UUID, datetime, datetime]:
        user = await _user(session)
        before = utcnow()
        token = await sessions.create_session(session, user_id=user, idle=idle, max_age=MAX_AGE)
        after = utcnow()
        row = await _one(session, "SELECT * FROM auth_sessions WHERE user_id = :u", u=user)
        return token, row, user, before, after

    token, row, user, before, after = _run(db_url, work)
    assert len(token) == 43 and row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert len(row.csrf_token) == 43 and row.csrf_token != token
    assert before <= row.created_at <= after and row.user_id == user
    assert row.expires_at == row.created_at + expires
    assert row.absolute_expires_at == row.created_at + MAX_AGE


def _resolve_after(
    db_url: str, *, expires_in: timedelta, absolute_in: timedelta = MAX_AGE, revoke: bool = False
) -> tuple[sessions.SignedIn | None, Any, Any, datetime, datetime]:
    """Create a session, move its expiry to now + ``expires_in`` (its absolute end to now +
    ``absolute_in``), resolve it; returns what resolved, the row before and after, and the
    time just before and after resolving."""

    async def work(session: AsyncSession) -> Any:
        user = await _user(session)
        token = await sessions.create_session(session, user_id=user, idle=IDLE, max_age=MAX_AGE)
        await session.execute(
            text(
                "UPDATE auth_sessions SET expires_at = now() + :e, absolute_expires_at = now() + :a"
            ),
            {"e": expires_in, "a": absolute_in},
        )
        if revoke:
            await session.execute(
                text("UPDATE users SET revoked_at = now() WHERE id = :u"), {"u": user}
            )
        sql = "SELECT * FROM auth_sessions WHERE user_id = :u"
        old = await _one(session, sql, u=user)
        before = utcnow()
        signed_in = await sessions.resolve_session(session, token=token, idle=IDLE)
        after = utcnow()
        return signed_in, old, await _one(session, sql, u=user), before, after, user

    signed_in, old, new, before, after, user = _run(db_url, work)
    if signed_in is not None:
        assert signed_in == sessions.SignedIn(
            user, f"{user.hex}@example.com", "Ada", old.csrf_token
        )
    return signed_in, old, new, before, after


def test_a_session_in_use_slides_its_expiry_to_a_full_idle_window(db_url: str) -> None:
    signed_in, old, new, before, after = _resolve_after(
        db_url, expires_in=IDLE - timedelta(minutes=63)
    )
    assert signed_in is not None
    assert before + IDLE <= new.expires_at <= after + IDLE


def test_a_session_is_written_at_most_every_tenth_of_its_idle_window(db_url: str) -> None:
    """60 minutes is a tenth of the 600-minute window: 57 minutes behind is not rewritten."""
    signed_in, old, new, *_ = _resolve_after(db_url, expires_in=IDLE - timedelta(minutes=57))
    assert signed_in is not None and new.expires_at == old.expires_at


def test_sliding_stops_at_the_sessions_maximum_age(db_url: str) -> None:
    signed_in, old, new, *_ = _resolve_after(
        db_url, expires_in=timedelta(minutes=1), absolute_in=timedelta(hours=2)
    )
    assert signed_in is not None and new.expires_at == old.absolute_expires_at


@pytest.mark.parametrize(
    ("expires_in", "revoke"), [(-timedelta(seconds=5), False), (timedelta(minutes=5), True)]
)
def test_an_expired_session_or_a_revoked_users_resolves_to_no_one(
    db_url: str, expires_in: timedelta, revoke: bool
) -> None:
    signed_in, *_ = _resolve_after(db_url, expires_in=expires_in, revoke=revoke)
    assert signed_in is None


def test_ending_sessions_one_all_of_a_user_or_the_expired(db_url: str) -> None:
    async def work(session: AsyncSession) -> list[Any]:
        ada, bob = await _user(session), await _user(session)

        async def new(user: uuid.UUID) -> str:
            return await sessions.create_session(session, user_id=user, idle=IDLE, max_age=MAX_AGE)

        a1, a2, a3, b1 = await new(ada), await new(ada), await new(ada), await new(bob)
        assert await sessions.resolve_session(session, token="not-a-token", idle=IDLE) is None
        await sessions.end_session(session, token=a1)
        gone = [
            await sessions.resolve_session(session, token=t, idle=IDLE) is None for t in (a1, a2)
        ]
        ended = await sessions.end_all_sessions(session, user_id=ada)
        left = [
            await sessions.resolve_session(session, token=t, idle=IDLE) is None for t in (a3, b1)
        ]
        await new(bob)
        await session.execute(
            text("UPDATE auth_sessions SET expires_at = now() - interval '1 second' "
                 "WHERE token_hash = :h"),
            {"h": hashlib.sha256(b1.encode()).hexdigest()},
        )  # fmt: skip
        purged = await sessions.purge_expired(session)
        assert await sessions.purge_expired(session) == 0  # nothing left to purge
        assert await sessions.end_all_sessions(session, user_id=ada) == 0
        count = (
            await _one(session, "SELECT count(*) FROM auth_sessions WHERE user_id = :u", u=bob)
        )[0]
        return [gone, ended, left, purged, count]

    assert _run(db_url, work) == [[True, False], 2, [True, False], 1, 1]


# --- who may enter


def _settings(**values: object) -> Any:
    base: dict[str, object] = {
        "dev_login": False,  # dev sign-in off, as in production
        "allowed_emails": "ada@example.com",
        "allowed_domains": "trusted.example",
        "admin_emails": "root@example.com",
    }
    return make_settings(**{**base, **values})


def test_admins_are_the_listed_emails_and_in_dev_the_dev_admin() -> None:
    prod, dev = _settings(), _settings(dev_login=None)
    assert access.is_admin(prod, "Root@Example.com") and not access.is_admin(
        prod, "ada@example.com"
    )
    assert not access.is_admin(prod, access.DEV_ADMIN_EMAIL)
    assert (
        access.is_admin(dev, "ADMIN@localhost.test")
        and access.DEV_ADMIN_EMAIL == "admin@localhost.test"
    )


@pytest.mark.parametrize(
    ("email", "allowed"),
    [
        ("ADA@example.com", True),
        ("bob@example.com", False),
        ("bob@Trusted.example", True),
        ("bob@sub.trusted.example", False),
        ("root@example.com", True),  # an admin
        ("trusted.example@evil.example", False),
        ('"a@b"@trusted.example', True),  # a quoted local part may hold an @: the last one counts
    ],
)
def test_the_allowlist_is_exact_emails_domains_and_admins(email: str, allowed: bool) -> None:
    assert access.on_allowlist(_settings(), email) is allowed


def _admit(
    db_url: str,
    identity: Identity,
    *,
    code: str | None = None,
    skip: bool = False,
    **settings: object,
) -> Any:
    async def work(session: AsyncSession) -> Any:
        before = utcnow()
        user = await access.admit(
            session, _settings(**settings), identity, invite_code=code, skip_allowlist=skip
        )
        return user, before

    return _run(db_url, work)


def test_an_allowed_person_is_created_once_and_signed_in_again(db_url: str) -> None:
    email = f"{uuid.uuid4().hex}@trusted.example"
    first, before = _admit(db_url, Identity(email.upper(), "", True))
    assert (first.email, first.name, first.invited_by) == (email, email, None)
    assert first.last_login_at >= before
    again, before = _admit(db_url, Identity(email, "Ada", True))
    assert again.id == first.id and again.name == email  # the stored name is kept
    assert again.last_login_at >= before > first.last_login_at


def test_a_first_sign_in_that_loses_the_race_for_its_email_signs_in_as_the_winner(
    db_url: str,
) -> None:
    """Two first sign-ins with one email (two tabs, two replicas), each in its own
    transaction: the first creates the user; the second's insert waits on the unique email
    until the first commits, then fails, and its savepoint gives way to the user the first
    made. Both sign in, as one user; the loser's transaction goes on (no 500)."""
    email = f"{uuid.uuid4().hex}@trusted.example"
    identity = Identity(email, "Ada", True)

    async def go() -> tuple[Any, Any, int]:
        engine = make_async_engine(db_url)
        made = async_sessionmaker(engine, expire_on_commit=False)
        try:
            # Closed in reverse: the winner first, so a failure never leaves the loser waiting.
            async with made() as second, made() as first, made() as watcher:
                winner = await access.admit(first, _settings(), identity, invite_code=None)
                losing = asyncio.ensure_future(
                    access.admit(second, _settings(), identity, invite_code=None)
                )
                deadline = time.monotonic() + 60  # polled: until the second insert waits
                waiting = text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                # Each poll in its own transaction: PostgreSQL keeps one snapshot of
                # pg_stat_activity per transaction, so a poll that began before the second
                # insert waited would never see it wait.
                while not (await watcher.execute(waiting)).scalar_one():
                    await watcher.rollback()
                    assert not losing.done(), losing
                    assert time.monotonic() < deadline, "the second insert never waited"
                    await asyncio.sleep(0.02)
                await watcher.rollback()
                await first.commit()  # the winner's user exists now
                try:
                    loser = await losing
                except Exception as err:  # failed below, once the sessions are closed
                    return winner, err, 0
                await _user(second)  # the loser's transaction goes on
                await second.commit()
                count = text("SELECT count(*) FROM users WHERE email = :e")
                users = (await watcher.execute(count, {"e": email})).scalar_one()
                return winner, loser, users
        finally:
            await engine.dispose()

    winner, loser, users = asyncio.run(go())
    assert not isinstance(loser, Exception), loser
    assert loser.id == winner.id and (loser.email, loser.name) == (email, "Ada")
    assert loser.last_login_at >= winner.last_login_at
    assert users == 1


def test_the_allowlist_applies_unless_the_caller_skips_it(db_url: str) -> None:
    async def work(session: AsyncSession) -> None:
        stranger = Identity(f"{uuid.uuid4().hex}@elsewhere.example", "", True)
        await access.admit(session, _settings(), stranger, invite_code=None)

    with pytest.raises(AccessDenied):
        _run(db_url, work)


def test_a_new_person_gets_the_providers_name(db_url: str) -> None:
    user, _ = _admit(db_url, Identity(f"{uuid.uuid4().hex}@trusted.example", "Ada L", True))
    assert user.name == "Ada L"


def test_refusals_say_why(db_url: str) -> None:
    stranger = f"{uuid.uuid4().hex}@elsewhere.example"
    cases = [
        (Identity("ada@example.com", "", False), None, "The provider has not verified the email address ada@example.com."),
        (Identity(stranger, "", True), None, f"{stranger} is not on this service's list of allowed users."),
        (Identity(stranger, "", True), "no-such-code", "This invite code is not valid: it was used up, expired or revoked."),
    ]  # fmt: skip
    for identity, code, message in cases:
        with pytest.raises(AccessDenied) as denied:
            _admit(db_url, identity, code=code)
        assert str(denied.value) == message

    async def revoke(session: AsyncSession) -> None:
        await _user(session, "gone@trusted.example")
        await session.execute(
            text("UPDATE users SET revoked_at = now() WHERE email = 'gone@trusted.example'")
        )

    _run(db_url, revoke)
    with pytest.raises(AccessDenied) as denied:
        _admit(db_url, Identity("Gone@trusted.example", "", True))
    assert str(denied.value) == "Access for gone@trusted.example has been revoked by the operator."


def test_an_invite_lets_in_as_many_people_as_it_has_uses_and_they_stay_in(db_url: str) -> None:
    async def create(session: AsyncSession) -> Any:
        before = utcnow()
        invite = await access.create_invite(
            session,
            max_uses=2,
            expires_at=utcnow() + timedelta(days=1),
            created_by="root",
            note="n",
        )
        return invite, before

    invite, before = _run(db_url, create)
    assert len(invite.code) == 16 and (invite.max_uses, invite.uses) == (2, 0)
    assert (invite.created_by, invite.note) == ("root", "n") and invite.created_at >= before
    people = [Identity(f"{uuid.uuid4().hex}@elsewhere.example", "", True) for _ in range(3)]
    with pytest.raises(AccessDenied):  # another code, while this one is valid
        _admit(db_url, people[0], code="not-" + invite.code)
    first, _ = _admit(db_url, people[0], code=invite.code)
    second, _ = _admit(db_url, people[1], code=invite.code)
    assert first.invited_by == second.invited_by == invite.id
    with pytest.raises(AccessDenied):  # used up
        _admit(db_url, people[2], code=invite.code)
    again, _ = _admit(db_url, people[0])  # invited before: no code needed
    assert again.id == first.id and again.invited_by == invite.id
    skipped, _ = _admit(db_url, people[2], skip=True)
    assert skipped.invited_by is None

    async def uses(session: AsyncSession) -> int:
        return int((await _one(session, "SELECT uses FROM invites WHERE id = :i", i=invite.id))[0])

    assert _run(db_url, uses) == 2


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_an_expired_or_revoked_invite_lets_no_one_in(db_url: str, state: str) -> None:
    async def work(session: AsyncSession) -> int | None:
        invite = await access.create_invite(
            session, max_uses=5, expires_at=utcnow() + timedelta(days=1), created_by="r", note=""
        )
        sql = {
            "expired": "UPDATE invites SET expires_at = now() - interval '1 second' WHERE id = :i",
            "revoked": "UPDATE invites SET revoked_at = now() WHERE id = :i",
        }
        await session.execute(text(sql[state]), {"i": invite.id})
        return await access.consume_invite(session, invite.code)

    assert _run(db_url, work) is None


# --- personal access tokens


@pytest.mark.parametrize(
    ("value", "looks"),
    [("rs_" + "a" * 17, True), ("rs_" + "a" * 16, False), ("rs_" + "a" * 97, True),
     ("rs_" + "a" * 98, False), ("xx_" + "a" * 40, False)],
)  # fmt: skip
def test_a_token_looks_like_rs_and_20_to_100_characters(value: str, looks: bool) -> None:
    assert tokens.looks_like_token(value) is looks


def test_a_token_is_shown_once_stored_hashed_and_resolves_to_its_user(db_url: str) -> None:
    async def work(session: AsyncSession) -> Any:
        user = await _user(session)
        before = utcnow()
        new = await tokens.create_token(session, user_id=user, name="ci", created_by="ada@x")
        row = await _one(session, "SELECT * FROM api_tokens WHERE id = :i", i=new.row.id)
        resolved = await tokens.resolve_token(session, token=new.secret)
        used = await _one(
            session, "SELECT last_used_at FROM api_tokens WHERE id = :i", i=new.row.id
        )
        wrong = await tokens.resolve_token(session, token=new.secret[:-1] + "?")
        return user, before, new, row, resolved, used[0], wrong

    user, before, new, row, resolved, used, wrong = _run(db_url, work)
    assert new.secret.startswith("rs_") and len(new.secret) == 46
    assert (
        row.token_hash
        == hashlib.sha256(new.secret.encode()).hexdigest()
        == tokens.hash_token(new.secret)
    )
    assert (row.prefix, row.user_id, row.name, row.created_by) == (
        new.secret[:10],
        user,
        "ci",
        "ada@x",
    )
    assert row.created_at >= before and row.last_used_at is None
    assert resolved == tokens.TokenUser(new.row.id, user, f"{user.hex}@example.com", "Ada")
    assert used is not None and used >= before
    assert wrong is None


@pytest.mark.parametrize(("last_used_ago", "rewritten"), [(None, True), (30, False), (90, True)])
def test_last_use_is_written_at_most_once_a_minute(
    db_url: str, last_used_ago: int | None, rewritten: bool
) -> None:
    async def work(session: AsyncSession) -> tuple[Any, Any]:
        new = await tokens.create_token(
            session, user_id=await _user(session), name="t", created_by="a"
        )
        if last_used_ago is not None:
            await session.execute(
                text("UPDATE api_tokens SET last_used_at = now() - :a WHERE id = :i"),
                {"a": timedelta(seconds=last_used_ago), "i": new.row.id},
            )
        sql = "SELECT last_used_at FROM api_tokens WHERE id = :i"
        old = (await _one(session, sql, i=new.row.id))[0]
        assert await tokens.resolve_token(session, token=new.secret) is not None
        return old, (await _one(session, sql, i=new.row.id))[0]

    old, new = _run(db_url, work)
    assert (new != old) is rewritten


def test_revoked_tokens_and_tokens_of_revoked_users_resolve_to_no_one(db_url: str) -> None:
    async def work(session: AsyncSession) -> list[object]:
        ada, bob = await _user(session), await _user(session)
        a = await tokens.create_token(session, user_id=ada, name="a", created_by="x")
        b = await tokens.create_token(session, user_id=bob, name="b", created_by="x")
        results: list[object] = [
            await tokens.revoke_token(session, token_id=a.row.id, user_id=bob),  # not bob's
            await tokens.revoke_token(session, token_id=a.row.id, user_id=ada),
            await tokens.revoke_token(session, token_id=a.row.id, user_id=ada),  # already
            await tokens.resolve_token(session, token=a.secret),
        ]
        await session.execute(text("UPDATE users SET revoked_at = now() WHERE id = :u"), {"u": bob})
        results.append(await tokens.resolve_token(session, token=b.secret))
        c = await tokens.create_token(session, user_id=ada, name="c", created_by="x")
        results.append(await tokens.revoke_token(session, token_id=c.row.id, user_id=None))  # admin
        return results

    assert _run(db_url, work) == [False, True, False, None, None, True]


def test_tokens_are_listed_newest_first_per_user_or_all(db_url: str) -> None:
    async def work(session: AsyncSession) -> list[list[str]]:
        ada, bob = await _user(session), await _user(session)
        made = []
        for user, name in [(ada, "a1"), (bob, "b1"), (ada, "a2")]:
            made.append(
                (await tokens.create_token(session, user_id=user, name=name, created_by="x")).row
            )
            await session.execute(  # distinct creation times, oldest first
                text(
                    "UPDATE api_tokens SET created_at = now() - :n * interval '1 minute' WHERE id = :i"
                ),
                {"n": 10 - len(made), "i": made[-1].id},
            )
        mine = [t.name for t in await tokens.list_tokens(session, user_id=ada)]
        every = [
            t.name
            for t in await tokens.list_tokens(session, user_id=None)
            if t.id in {m.id for m in made}
        ]
        return [mine, every]

    assert _run(db_url, work) == [["a2", "a1"], ["a2", "b1", "a1"]]


def test_a_tokens_json_has_its_fields_and_times_in_iso_8601(db_url: str) -> None:
    async def work(session: AsyncSession) -> tuple[Any, dict[str, object]]:
        new = await tokens.create_token(
            session, user_id=await _user(session), name="n", created_by="c"
        )
        await tokens.resolve_token(session, token=new.secret)  # sets last_used_at
        await tokens.revoke_token(session, token_id=new.row.id, user_id=None)
        await session.refresh(new.row)
        return new.row, tokens.token_json(new.row)

    row, data = _run(db_url, work)
    assert data == {
        "id": str(row.id),
        "name": "n",
        "prefix": row.prefix,
        "user_id": str(row.user_id),
        "created_by": "c",
        "created_at": row.created_at.isoformat(),
        "last_used_at": row.last_used_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat(),
    }


def test_a_token_never_used_or_revoked_has_no_such_times(db_url: str) -> None:
    async def work(session: AsyncSession) -> dict[str, object]:
        new = await tokens.create_token(
            session, user_id=await _user(session), name="n", created_by="c"
        )
        return tokens.token_json(new.row)

    data = _run(db_url, work)
    assert (data["last_used_at"], data["revoked_at"]) == (None, None)


# --- the OpenID Connect client


def test_the_oidc_client_uses_discovery_and_pkce_and_is_off_without_credentials() -> None:
    discovery = "https://idp.example/.well-known/openid-configuration"
    assert oidc.build_oidc_client(make_settings(oidc_client_id="id")) is None
    assert oidc.build_oidc_client(make_settings(oidc_client_secret="s")) is None
    client = oidc.build_oidc_client(
        make_settings(oidc_discovery_url=discovery, oidc_client_id="id", oidc_client_secret="s")
    )
    assert client is not None and client.name == oidc.PROVIDER == "oidc"
    assert (client.client_id, client.client_secret) == ("id", "s")
    assert client._server_metadata_url == discovery
    assert client.client_kwargs == {
        "scope": "openid email profile",
        "code_challenge_method": "S256",
    }
