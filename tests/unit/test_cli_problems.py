"""API problems in the CLI's words: the variable to set, the option a refused field came
from. The bodies are the API's problem+json shapes (tests/e2e/test_cli.py meets them
from a real server)."""

from __future__ import annotations

from signoff.entrypoints.cli.client import ApiError, ClientSettings
from signoff.entrypoints.cli.problems import flag_of, said

URL = "http://127.0.0.1:8000"
WITH_TOKEN = ClientSettings(URL, "so_x")


def validation(*errors: tuple[str, str]) -> ApiError:
    field, message = errors[0]
    body = {
        "type": "https://signoff.dev/problems/validation-error",
        "detail": f"{field}: {message}",
        "field": field.split(".", 1)[-1],
        "errors": [{"field": f, "message": m} for f, m in errors],
    }
    return ApiError(422, "validation-error", str(body["detail"]), body)


def test_no_token_and_a_token_the_server_does_not_know() -> None:
    missing = ApiError(401, "unauthenticated", "send 'Authorization: Bearer <token>'")
    assert said(missing, ClientSettings(URL, "")) == (
        "not logged in: run signoff login, or set SIGNOFF_TOKEN (an admin makes one with: "
        "signoff token create --user NAME)"
    )
    wrong = ApiError(401, "unauthenticated", "the API token is not valid")
    assert said(wrong, WITH_TOKEN) == (
        f"SIGNOFF_TOKEN is not a valid API token on {URL} "
        "(an admin makes one with: signoff token create --user NAME)"
    )


def test_a_refused_field_is_named_by_its_option() -> None:
    literal = "Input should be 'low', 'medium', 'high' or 'critical'"
    risk = validation(("body.context.risk", literal))
    assert said(risk, WITH_TOKEN) == "--risk: must be one of low, medium, high, critical"
    label = validation(
        ("body.context.labels.team", "String should have at most 200 characters"),
        ("body.ticket", "String should have at most 200 characters"),
    )
    assert said(label, WITH_TOKEN) == (
        "--label team: string should have at most 200 characters (and 1 more)"
    )
    limit = validation(("query.limit", "Input should be less than or equal to 200"))
    assert said(limit, WITH_TOKEN) == "--limit: input should be less than or equal to 200"
    # a rule of the domain, with the field it is about
    nul = ApiError(422, "invalid-input", "params.a contains a NUL character", {"field": "params.a"})
    assert said(nul, WITH_TOKEN) == "--param: params.a contains a NUL character"
    argv = ApiError(422, "invalid-input", "argv[0] is not allowed", {"field": "params.argv"})
    assert said(argv, WITH_TOKEN) == "--arg: argv[0] is not allowed"


def test_a_field_no_option_fills_keeps_the_servers_words() -> None:
    short = "'abc' is too short to name a request: give at least 8 characters of its id"
    ref = ApiError(422, "invalid-input", short, {"field": "request_id"})
    assert said(ref, WITH_TOKEN) == short
    assert said(validation(("body.action", "Field required")), WITH_TOKEN) == (
        "body.action: Field required"
    )
    assert flag_of("context.diff") is None and flag_of("context.labels") == ("--label", "")


def test_an_unreachable_server_names_the_variable_that_points_at_it() -> None:
    down = ApiError(0, "unreachable", f"cannot reach {URL}: [Errno 111] Connection refused")
    assert said(down, WITH_TOKEN) == (
        f"cannot reach {URL}: [Errno 111] Connection refused "
        "(is the server running? SIGNOFF_URL says where it is)"
    )
