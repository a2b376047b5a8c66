"""The official MCP Python SDK (`mcp`, pinned in requirements.txt) through
a step-up against the mcp-auth demo: sign in (the 401 names mcp:tools),
read_note (403: notes:read), save_note (403: notes:write), read_note
again. The SDK answers each 403 `insufficient_scope` by authorizing again
with the challenge's scopes; the challenge names what the call needs plus
what the token holds, so the last read needs no authorization.

Usage: python stepup.py <mcp-url>. One line per check; exits non-zero on
the first failure.
"""

import asyncio
import re
import sys
import urllib.parse

import httpx2
from mcp import ClientSession
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

URL = sys.argv[1]
USER = "py-stepup@example.com"
REDIRECT = "http://localhost:48997/callback"


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAILED: {what}", file=sys.stderr, flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


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


def field(html: str, name: str) -> str | None:
    match = re.search(f'name="{name}" value="([^"]*)"', html)
    return match.group(1) if match else None


class Person:
    """A browser: cookies kept by hand (the server's are `Secure`, which a
    client library keeps off plain-http loopback and a browser does not),
    forms read from the HTML, no redirects followed."""

    def __init__(self) -> None:
        self.http = httpx2.AsyncClient(follow_redirects=False)
        self.cookies: dict[str, str] = {}
        self.callback: str | None = None
        self.authorizations = 0
        self.consents = 0

    async def load(self, url: str, form: dict[str, str | None] | None = None) -> httpx2.Response:
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is None:
            response = await self.http.get(url, headers=headers)
        else:
            response = await self.http.post(url, data=form, headers=headers)
        for line in response.headers.get_list("set-cookie"):
            name, _, value = line.split(";")[0].partition("=")
            self.cookies[name.strip()] = value
        return response

    async def redirect(self, authorization_url: str) -> None:
        self.authorizations += 1
        page = await self.load(authorization_url)
        base = authorization_url.split("/authorize")[0]
        if 'name="user"' in page.text:
            page = await self.load(
                f"{base}/login",
                {"pending": field(page.text, "pending"), "csrf": field(page.text, "csrf"), "user": USER},
            )
        if page.status_code == 200:
            scope = urllib.parse.parse_qs(urllib.parse.urlparse(authorization_url).query).get("scope")
            check("Allow" in page.text, f"a consent page ({scope})")
            self.consents += 1
            page = await self.load(
                f"{base}/consent",
                {"pending": field(page.text, "pending"), "csrf": field(page.text, "csrf"), "decision": "approve"},
            )
        check(page.status_code == 303, f"back at the client ({page.status_code})")
        self.callback = page.headers["location"]

    async def code(self) -> AuthorizationCodeResult:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.callback).query)
        return AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )


async def main() -> None:
    person = Person()
    auth = OAuthClientProvider(
        server_url=URL,
        client_metadata=OAuthClientMetadata(
            client_name="Python SDK step-up",
            redirect_uris=[REDIRECT],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=Memory(),
        redirect_handler=person.redirect,
        callback_handler=person.code,
    )
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(URL, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                check(person.consents == 1, "signed in with one consent")
                first = await session.call_tool("read_note", {})
                check(not first.is_error, f"read_note after a step-up ({person.consents} consents)")
                saved = await session.call_tool("save_note", {"text": "from the Python SDK"})
                check(not saved.is_error, f"save_note after a step-up ({person.consents} consents)")
                before = person.authorizations
                again = await session.call_tool("read_note", {})
                check(
                    not again.is_error and person.authorizations == before,
                    f"read_note again needs no authorization ({person.authorizations - before} more)",
                )
                check(person.consents == 3, f"read, write, read in three consents ({person.consents})")
    print("all checks passed", flush=True)


asyncio.run(main())
