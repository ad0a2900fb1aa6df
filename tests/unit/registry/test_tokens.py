import pytest

from registry.tokens import TokenError, Tokens, resolve_tokens


def made() -> str:
    return "generated-token"


def test_dev_without_a_token_makes_one_up_as_a_write_token() -> None:
    tokens = resolve_tokens("dev", None, {}, generate=made)
    assert tokens.generated == "generated-token"
    assert tokens.roles == {"generated-token": "write"}
    assert tokens.allows("generated-token", "write") and not tokens.reads_need_token


def test_dev_with_a_token_makes_none_up() -> None:
    assert resolve_tokens("dev", "mine", {}, generate=made) == Tokens({"mine": "write"})
    # a write entry of the map is enough too; read tokens alone are not
    only_read = resolve_tokens("dev", None, {"r": "read"}, generate=made)
    assert only_read.roles == {"r": "read", "generated-token": "write"}
    assert resolve_tokens("dev", None, {"w": "write"}, generate=made).generated is None


@pytest.mark.parametrize("profile", ["production", "staging"])
def test_outside_dev_no_write_token_refuses_to_start(profile: str) -> None:
    with pytest.raises(TokenError, match="no write token"):
        resolve_tokens(profile, None, {}, generate=made)
    with pytest.raises(TokenError, match="no write token"):
        resolve_tokens(profile, None, {"reader": "read"}, generate=made)


def test_outside_dev_the_old_default_refuses_to_start() -> None:
    with pytest.raises(TokenError, match="well-known default"):
        resolve_tokens("production", "change-me", {}, generate=made)
    with pytest.raises(TokenError, match="well-known default"):
        resolve_tokens("production", "s3cret", {"change-me": "read"}, generate=made)
    assert resolve_tokens("dev", "change-me", {}, generate=made).roles == {"change-me": "write"}


def test_empty_tokens_are_refused_and_no_message_shows_a_token() -> None:
    with pytest.raises(TokenError) as err:
        resolve_tokens("production", " ", {"top-secret": "write"}, generate=made)
    assert "top-secret" not in str(err.value)
    with pytest.raises(TokenError) as err:
        resolve_tokens("production", None, {"top-secret": "read"}, generate=made)
    assert "top-secret" not in str(err.value)


def test_api_token_is_a_write_token_whatever_the_map_says() -> None:
    tokens = resolve_tokens("production", "w1", {"w1": "read", "w2": "write", "r1": "read"})
    assert tokens.roles == {"w1": "write", "w2": "write", "r1": "read"}


def test_roles() -> None:
    tokens = Tokens({"w": "write", "r": "read"})
    assert tokens.reads_need_token
    assert [tokens.allows(t, "read") for t in ("w", "r", "x", None)] == [True, True, False, False]
    assert [tokens.allows(t, "write") for t in ("w", "r", "x", None)] == [True, False, False, False]
    assert tokens.role("w") == "write" and tokens.role("wx") is None and tokens.role("") is None
    assert "w" not in repr(tokens).replace("Tokens", "")  # no token in a repr
