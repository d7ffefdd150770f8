"""Authentication and authorization matrix of the read API, startup refusal, RS256, the token CLI."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from api_helpers import SECRET, make_api
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from analytics_pipelines.api import ConfigError, Settings, create_app
from analytics_pipelines.api.auth import mint_token
from analytics_pipelines.cli import main as cli_main

URL = "/v1/revenue/summary?start_date=2026-10-12&end_date=2026-10-31"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sec")
    a, reader = make_api(f"duckdb:///{tmp / 'warehouse'}", tmp)
    yield a
    reader.close()


def _claims(api, **over):
    t = api.marts.tenant_ids()[0]
    now = int(time.time())
    c = {
        "sub": "u1",
        "tenant_id": t,
        "venue_id": api.marts.tenants[t][0],
        "role": "user",
        "permissions": ["analytics.read"],
        "iss": api.settings.jwt_issuer,
        "aud": api.settings.jwt_audience,
        "iat": now,
        "exp": now + 600,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def _call(api, token: str | None, url: str = URL, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return api.client.get(url, headers=headers)


def test_valid_token_reads(api):
    assert _call(api, jwt.encode(_claims(api), SECRET, algorithm="HS256")).status_code == 200


@pytest.mark.parametrize(
    "case, expected_detail",
    [
        ("missing", "Authentication required"),
        ("not bearer", "Authentication required"),
        ("garbage", "Invalid token"),
        ("expired", "Token expired"),
        ("wrong audience", "wrong audience"),
        ("wrong issuer", "wrong issuer"),
        ("no exp", "missing claim exp"),
        ("no aud", "missing claim aud"),
        ("no iss", "missing claim iss"),
        ("alg none", "Invalid token"),
        ("tampered payload", "Invalid token"),
        ("wrong key", "Invalid token"),
        ("HS512", "Invalid token"),
        ("no tenant", "no tenant_id"),
        ("tenant not uuid", "not a UUID"),
        ("no user", "no user id"),
        ("permissions not list", "permissions must be a list"),
    ],
)
def test_401_matrix(api, case, expected_detail):
    good = _claims(api)
    token, scheme = None, "Bearer"
    if case == "not bearer":
        token, scheme = jwt.encode(good, SECRET, algorithm="HS256"), "Basic"
    elif case == "garbage":
        token = "not.a.jwt"
    elif case == "expired":
        token = jwt.encode({**good, "exp": int(time.time()) - 60}, SECRET, algorithm="HS256")
    elif case == "wrong audience":
        token = jwt.encode({**good, "aud": "someone-else"}, SECRET, algorithm="HS256")
    elif case == "wrong issuer":
        token = jwt.encode({**good, "iss": "evil"}, SECRET, algorithm="HS256")
    elif case.startswith("no ") and case[3:] in ("exp", "aud", "iss"):
        token = jwt.encode(_claims(api, **{case[3:]: None}), SECRET, algorithm="HS256")
    elif case == "alg none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**good, 'role': 'admin'})}."
    elif case == "tampered payload":
        h, _, sig = jwt.encode(good, SECRET, algorithm="HS256").split(".")
        token = f"{h}.{_b64({**good, 'role': 'admin', 'permissions': ['analytics.admin']})}.{sig}"
    elif case == "wrong key":
        token = jwt.encode(good, "another-secret-another-secret-another-secret", algorithm="HS256")
    elif case == "HS512":
        token = jwt.encode(good, SECRET, algorithm="HS512")
    elif case == "no tenant":
        token = jwt.encode(_claims(api, tenant_id=None), SECRET, algorithm="HS256")
    elif case == "tenant not uuid":
        token = jwt.encode(_claims(api, tenant_id="' OR 1=1 --"), SECRET, algorithm="HS256")
    elif case == "no user":
        token = jwt.encode(_claims(api, sub=None), SECRET, algorithm="HS256")
    elif case == "permissions not list":
        token = jwt.encode(_claims(api, permissions="analytics.read"), SECRET, algorithm="HS256")
    r = _call(api, token, scheme=scheme)
    assert r.status_code == 401, (case, r.text)
    assert expected_detail in r.json()["detail"], (case, r.json())
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_403_matrix(api):
    t = api.marts.tenant_ids()[0]
    v, v_other = api.marts.tenants[t]
    no_read = jwt.encode(_claims(api, permissions=["analytics.export"]), SECRET, algorithm="HS256")
    r = _call(api, no_read)
    assert r.status_code == 403 and "analytics.read" in r.json()["detail"]
    wrong_venue = jwt.encode(_claims(api), SECRET, algorithm="HS256")
    r = _call(api, wrong_venue, URL + f"&venue_id={v_other}")
    assert r.status_code == 403 and "not scoped to venue" in r.json()["detail"]
    # venue claimed only in the request path/query does not widen a token without a venue
    no_venue = jwt.encode(_claims(api, venue_id=None), SECRET, algorithm="HS256")
    assert _call(api, no_venue).status_code == 403
    assert _call(api, no_venue, URL + f"&venue_id={v}").status_code == 403
    # export needs analytics.export; role admin passes every permission check; analytics.admin widens scope
    body = {"export_type": "raw_data", "format": "json", "options": {"table": "venue_analytics"}}
    assert (
        api.client.post(
            "/v1/exports", json=body, headers={"Authorization": f"Bearer {wrong_venue}"}
        ).status_code
        == 403
    )
    admin = jwt.encode(_claims(api, role="admin", permissions=[], venue_id=None), SECRET, algorithm="HS256")
    assert (
        api.client.post("/v1/exports", json=body, headers={"Authorization": f"Bearer {admin}"}).status_code
        == 202
    )
    tenant_admin = jwt.encode(
        _claims(api, permissions=["analytics.read", "analytics.admin"]), SECRET, algorithm="HS256"
    )
    assert _call(api, tenant_admin, URL + f"&venue_id={v_other}").status_code == 200
    # Grafana and the ops endpoints are protected too
    assert api.client.get("/grafana/").status_code == 401
    assert api.client.get("/v1/alerts/instances").status_code == 401
    assert api.client.get("/health").status_code == 200  # liveness stays open


def test_refuses_to_start_without_a_secret(tmp_path):
    base = Settings(warehouse_url=f"duckdb:///{tmp_path}")
    with pytest.raises(ConfigError, match="TT_API_JWT_SECRET"):
        create_app(base)
    with pytest.raises(ConfigError, match="at least 32"):
        create_app(Settings(warehouse_url=base.warehouse_url, jwt_secret="short"))
    # development mode runs with the built-in development secret, and `token` mints for it
    dev = Settings(warehouse_url=base.warehouse_url, mode="development")
    assert create_app(dev) is not None


def test_rs256_only_when_a_public_key_is_configured(api):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = Settings(
        warehouse_url=api.settings.warehouse_url, jwt_public_key=public, ops_url=api.settings.ops_url
    )
    client = TestClient(create_app(settings, reader=api.client.app.state.reader))
    claims = _claims(api)
    ok = jwt.encode(claims, private, algorithm="RS256")
    assert client.get(URL, headers={"Authorization": f"Bearer {ok}"}).status_code == 200
    assert mint_token(
        settings, tenant_id=claims["tenant_id"], venue_id=claims["venue_id"], private_key=private
    )
    # algorithm confusion: an HS256 token signed with the public key text is refused
    forged = _hs256(claims, public.encode())
    assert client.get(URL, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert (
        client.get(
            URL, headers={"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}
        ).status_code
        == 401
    )


def _hs256(claims: dict, key: bytes) -> str:
    import hashlib
    import hmac

    signing = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(key, signing.encode(), hashlib.sha256).digest()).rstrip(b"=")
    return f"{signing}.{sig.decode()}"


def test_token_cli_mints_what_the_api_accepts(api, monkeypatch, capsys):
    monkeypatch.setenv("TT_API_JWT_SECRET", SECRET)
    monkeypatch.delenv("TT_API_JWT_PUBLIC_KEY", raising=False)
    t = api.marts.tenant_ids()[0]
    v = api.marts.tenants[t][0]
    assert (
        cli_main(
            [
                "token",
                "--tenant",
                t,
                "--venue",
                v,
                "--role",
                "manager",
                "--permission",
                "analytics.read",
                "--permission",
                "analytics.export",
                "--expires-in",
                "120",
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience=api.settings.jwt_audience)
    assert claims["venue_id"] == v and claims["role"] == "manager" and claims["exp"] - claims["iat"] == 120
    assert set(claims["permissions"]) == {"analytics.read", "analytics.export"}
    assert _call(api, token).status_code == 200
    with pytest.raises(SystemExit):
        cli_main(["token", "--tenant", "not-a-uuid"])
    monkeypatch.delenv("TT_API_JWT_SECRET")
    monkeypatch.delenv("TT_API_MODE", raising=False)
    assert cli_main(["token", "--tenant", t]) == 2  # no secret outside development mode
    assert cli_main(["api", "--port", "1"]) == 2  # the server refuses to start too
