"""The official MCP Python SDK (`mcp`, pinned in requirements.txt) in the
client interop suite (mcp_auth_testkit::clients): it signs in, calls a
tool, steps up, refreshes and is revoked, with its own discovery,
registration, PKCE, code exchange and refresh. The person's part happens
in headless Chromium, driven by the Rust side.

Usage: python py-client.py <mcp-url> <tool> <args-json> <step-up-tool> <args-json>
Talks in lines. Out: "AUTHORIZE <url>" (in: "CALLBACK <url>"),
"OK <step>: <detail>", "READY revoke" (in: "REVOKED"),
"FAILED <step>: <detail>" (then exit 1), "DONE".
"""

import asyncio
import json
import sys
import time
import traceback
import urllib.parse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

URL, TOOL, TOOL_ARGS, STEP_UP_TOOL, STEP_UP_ARGS = sys.argv[1:6]
# A loopback redirect the client does not listen on: the test reads the
# callback URL from Chromium and hands it back on stdin.
REDIRECT = "http://localhost:48991/callback"
step = "sign-in"


def fail(detail: str) -> None:
    print(f"FAILED {step}: {detail}", flush=True)
    sys.exit(1)


def ok(detail: str) -> None:
    print(f"OK {step}: {detail}", flush=True)


async def expect_line(prefix: str) -> str:
    line = (await asyncio.to_thread(sys.stdin.readline)).strip()
    if not line.startswith(prefix):
        fail(f'expected "{prefix}" from the test, got {line!r}')
    return line[len(prefix) :].strip()


class Memory(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class SignInAgain(Exception):
    """The SDK asked the person to sign in again (after revocation)."""


class Person:
    """The person's part of each authorization: Chromium, driven by the test."""

    def __init__(self) -> None:
        self.callback = ""
        self.authorizations = 0
        self.revoked = False
        self.asked_after_revocation = False

    async def redirect(self, authorization_url: str) -> None:
        if self.revoked:
            self.asked_after_revocation = True
            raise SignInAgain()
        self.authorizations += 1
        print(f"AUTHORIZE {authorization_url}", flush=True)
        self.callback = await expect_line("CALLBACK ")

    async def code(self) -> AuthorizationCodeResult:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.callback).query)
        if "code" not in query:
            fail(f"the callback has no code: {self.callback}")
        return AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )


async def main() -> None:
    global step
    person = Person()
    storage = Memory()
    auth = OAuthClientProvider(
        server_url=URL,
        client_metadata=OAuthClientMetadata(
            client_name="Python SDK interop",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=person.redirect,
        callback_handler=person.code,
    )

    async def call(session: ClientSession, name: str, args: str) -> None:
        result = await session.call_tool(name, json.loads(args))
        if result.is_error:
            fail(f"{name} answered an error: {result.content}")

    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(URL, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                ok(f'signed in with scope "{storage.tokens.scope if storage.tokens else None}"')
                step = "tool call"
                await call(session, TOOL, TOOL_ARGS)
                ok(f"{TOOL} answered")

                step = "step-up"
                before = person.authorizations
                await call(session, STEP_UP_TOOL, STEP_UP_ARGS)
                if person.authorizations != before + 1:
                    fail(f"expected one more authorization, saw {person.authorizations - before}")
                ok(f'{STEP_UP_TOOL} answered after one more authorization, scope now "{storage.tokens.scope}"')

                step = "refresh"
                # The access token's time runs out, as an hour's wait would
                # make it: the SDK must refresh before the next call.
                old_refresh = storage.tokens.refresh_token if storage.tokens else None
                auth.context.token_expiry_time = time.time() - 1
                before = person.authorizations
                await call(session, TOOL, TOOL_ARGS)
                if person.authorizations != before:
                    fail("the SDK sent the person to sign in again instead of refreshing")
                if not storage.tokens or storage.tokens.refresh_token in (None, old_refresh):
                    fail("the refresh token was not rotated")
                ok(f"{TOOL} answered after a refresh (the refresh token rotated)")

                step = "revocation"
                print("READY revoke", flush=True)
                await expect_line("REVOKED")
                person.revoked = True
                auth.context.token_expiry_time = time.time() - 1
                try:
                    await asyncio.wait_for(session.call_tool(TOOL, json.loads(TOOL_ARGS)), 20)
                    fail("a call after revocation answered")
                except SystemExit:
                    raise
                except BaseException:  # the SDK's error, however it is wrapped
                    pass
                if not person.asked_after_revocation:
                    fail("the SDK did not ask the person to sign in again")
                ok("the refresh was refused and the SDK asked the person to sign in again")
                print("DONE", flush=True)
                sys.stdout.flush()
                # The session's task group may still hold the SDK's error.
                import os

                os._exit(0)


try:
    asyncio.run(main())
except SystemExit:
    raise
except BaseException:
    fail(traceback.format_exc().replace("\n", " | ")[-1500:])
