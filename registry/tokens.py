"""Who may call the registry API: bearer tokens and their roles. Pure.

Two settings name the tokens: `RUNWAY_API_TOKEN`, one write token (what the API always took),
and `RUNWAY_API_TOKENS`, a JSON object of token to `read` or `write`, for several clients that
can be told apart and revoked one at a time. A write token may also read. Reads need a token only
when a read token is configured: an open registry stays open until someone asks otherwise.

The API once started with a default token everybody knew (`change-me`). Now, outside the `dev`
profile, it refuses to start without a write token, and refuses that old value; in `dev` with
none set it makes one up, which the caller prints once (the only time a token is shown).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["read", "write"]
WELL_KNOWN = frozenset({"change-me"})  # RUNWAY_API_TOKEN's default until it had none


class TokenError(ValueError):
    """The configured tokens cannot be used; the message names settings, never a token."""


@dataclass(frozen=True)
class Tokens:
    roles: Mapping[str, Role] = field(repr=False)
    generated: str | None = field(default=None, repr=False)  # made up at start (dev only)

    @property
    def reads_need_token(self) -> bool:
        return "read" in self.roles.values()

    def role(self, presented: str) -> Role | None:
        """Compares with every token in constant time each, so timing tells nothing of which
        (or whether one) matched."""
        found: Role | None = None
        given = presented.encode()
        for token, role in self.roles.items():
            if secrets.compare_digest(given, token.encode()):
                found = role
        return found

    def allows(self, presented: str | None, needed: Role) -> bool:
        role = None if presented is None else self.role(presented)
        return role == "write" or (role is not None and role == needed)


def resolve_tokens(
    profile: str,
    api_token: str | None,
    api_tokens: Mapping[str, Role],
    generate: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> Tokens:
    """The API's tokens from the settings, or TokenError saying what to set."""
    roles: dict[str, Role] = dict(api_tokens)
    if api_token is not None:
        roles[api_token] = "write"  # RUNWAY_API_TOKEN is a write token, whatever the map says
    if any(not t.strip() for t in roles):
        raise TokenError("RUNWAY_API_TOKEN or RUNWAY_API_TOKENS holds an empty token.")
    if profile == "dev":
        if "write" not in roles.values():
            made = generate()
            return Tokens({**roles, made: "write"}, generated=made)
        return Tokens(roles)
    if any(t in WELL_KNOWN for t in roles):
        raise TokenError(
            f"RUNWAY_PROFILE={profile}: RUNWAY_API_TOKEN or RUNWAY_API_TOKENS holds the "
            "well-known default token 'change-me'; set a secret one."
        )
    if "write" not in roles.values():
        raise TokenError(
            f"RUNWAY_PROFILE={profile}: no write token; set RUNWAY_API_TOKEN (or a write entry "
            "in RUNWAY_API_TOKENS). Only the dev profile makes one up."
        )
    return Tokens(roles)
