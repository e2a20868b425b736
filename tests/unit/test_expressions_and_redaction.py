from __future__ import annotations

import pytest

from cardflow.flows.expressions import ExpressionError, parse_template, render, step_references
from cardflow.redaction import REDACTED, SecretSet, sensitive_values

SCOPE = {
    "trigger": {"body": {"n": 3, "tags": ["a"], "none": None, "ok": True}},
    "steps": {"user": {"body": {"name": "Ada"}}},
    "flow": {"id": "flw_1"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ trigger.body.n }}", 3),
        ("{{trigger.body.tags}}", ["a"]),
        ("{{ trigger.body.none }}", None),
        ("n={{ trigger.body.n }}", "n=3"),
        ("{{ trigger.body.tags }}!", '["a"]!'),
        ("[{{ trigger.body.none }}] {{ trigger.body.ok }}", "[] true"),
        ("{{ steps.user.body.name }} & {{ flow.id }}", "Ada & flw_1"),
        ("no expressions", "no expressions"),
        ("{ { not one } }", "{ { not one } }"),
    ],
)
def test_render_keeps_types_for_whole_expressions(template: str, expected: object) -> None:
    assert render(template, SCOPE) == expected


def test_render_nested_structures() -> None:
    assert render({"a": ["{{ trigger.body.n }}", {"b": "x{{ trigger.body.n }}"}]}, SCOPE) == {
        "a": [3, {"b": "x3"}]
    }


def test_bad_expression_names_itself() -> None:
    with pytest.raises(ExpressionError) as info:
        parse_template("value: {{ steps.[ }}")
    assert "steps.[" in str(info.value)


def test_no_code_runs() -> None:
    # JMESPath has no way to call Python: this is just a (missing) field.
    assert render("{{ __import__ }}", SCOPE) is None


def test_step_references() -> None:
    assert step_references('steps.a.b || steps."x-y".c && trigger.steps.z') == {"a", "x-y"}


def test_redactor_by_key_header_and_value() -> None:
    secrets = SecretSet(["s3cret-value"])
    secrets.add_header_names(["X-Api-Key"])
    secrets.add_learned(sensitive_values({"body": {"password": "hunter22"}}, secrets.headers))
    redact = secrets.stored()
    data = {
        "headers": {"authorization": "Basic x", "x-api-key": "k", "accept": "json"},
        "pairs": [["Set-Cookie", "sid=1"], ["Accept", "*/*"]],
        "text": "token is s3cret-value and hunter22",
        "client_secret": "z",
        "n": 1,
    }
    assert redact(data) == {
        "headers": {"authorization": REDACTED, "x-api-key": REDACTED, "accept": "json"},
        "pairs": [["Set-Cookie", REDACTED], ["Accept", "*/*"]],
        "text": f"token is {REDACTED} and {REDACTED}",
        "client_secret": REDACTED,
        "n": 1,
    }
