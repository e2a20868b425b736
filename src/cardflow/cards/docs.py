"""The card reference (docs/cards.md), written from the cards' own definitions.

python -m cardflow.cards.docs > docs/cards.md
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cardflow.cards.base import CardSpec

COMMAND = "python -m cardflow.cards.docs > docs/cards.md"

_TYPE_NAMES = {
    "string": "text",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _limits(schema: dict[str, Any]) -> str:
    marks = (
        ("minimum", "≥ {}"),
        ("exclusiveMinimum", "> {}"),
        ("maximum", "≤ {}"),
        ("exclusiveMaximum", "< {}"),
        ("minLength", "at least {} character{}"),
        ("maxLength", "at most {} character{}"),
        ("minItems", "at least {} item{}"),
        ("maxItems", "at most {} item{}"),
    )
    parts = [
        text.format(schema[key], "" if schema[key] == 1 else "s")
        for key, text in marks
        if key in schema
    ]
    return f" ({', '.join(parts)})" if parts else ""


def schema_type(schema: dict[str, Any], *, nested: bool = False) -> str:
    """A short, readable type for a JSON schema: ``integer (≥ 0) or null``, ``list of text``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "const" in schema:
        return _json(schema["const"])
    if "enum" in schema:
        text = " or ".join(_json(value) for value in schema["enum"])
        return f"({text})" if nested and len(schema["enum"]) > 1 else text
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        names = list(dict.fromkeys(schema_type(item, nested=True) for item in options))
        text = " or ".join(names)
        return f"({text})" if nested and len(names) > 1 else text
    kind = schema.get("type")
    if kind is None:
        return "any"
    if isinstance(kind, list):
        return schema_type({"anyOf": [{"type": item} for item in kind]}, nested=nested)
    if kind == "array":
        items = schema.get("items")
        return f"list of {schema_type(items, nested=True)}" if items else "list"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"object of {schema_type(values, nested=True)}"
        return "object"
    return _TYPE_NAMES.get(str(kind), str(kind)) + _limits(schema)


def _default(field: FieldInfo | None) -> str:
    if field is None:
        return ""
    value = field.get_default(call_default_factory=True)
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    try:
        return f"`{_json(value)}`"
    except (TypeError, ValueError):
        return f"`{value!r}`"


def inputs_table(model: type[BaseModel], heading: str = "input") -> list[str]:
    """The inputs as Markdown lines: a table from the model's JSON schema, plus any extra keys."""
    schema = model.model_json_schema()
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    extra = model.model_config.get("extra") == "allow"
    if not properties:
        return ["Inputs: any keys, with any values." if extra else "Inputs: none."]
    lines = [
        f"| {heading} | type | required | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, prop in properties.items():
        is_required = name in required
        default = "" if is_required else _default(fields.get(name))
        lines.append(
            f"| `{name}` | {_cell(schema_type(prop))} | {'yes' if is_required else 'no'} "
            f"| {_cell(default)} | {_cell(prop.get('description', ''))} |"
        )
    if extra:
        lines += ["", "Any other keys are accepted too, with any values."]
    return lines


def object_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The models an input's value may be (e.g. each pagination mode), by schema name."""
    found: dict[str, type[BaseModel]] = {}

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.setdefault(annotation.__name__, annotation)
            return
        for arg in get_args(annotation):
            walk(arg)

    for info in model.model_fields.values():
        walk(info.annotation)
    return found


def _objects(cards: Iterable[CardSpec]) -> list[str]:
    """One table per object an input takes (described once, whichever cards use it)."""
    models: dict[str, tuple[type[BaseModel], list[str]]] = {}
    for spec in cards:
        for name, model in object_models(spec.inputs).items():
            models.setdefault(name, (model, []))[1].append(spec.id)
    if not models:
        return []
    lines = [
        "## Input objects",
        "",
        "Objects some inputs take, one table per kind (`mode` says which). The builder "
        "edits such an input as JSON.",
        "",
    ]
    for name, (model, users) in models.items():
        used = ", ".join(f"`{card}`" for card in users)
        lines += [f"### {name}", "", (model.__doc__ or "").strip(), "", f"Taken by {used}.", ""]
        lines += [*inputs_table(model, "field"), ""]
    return lines


def _example(spec: CardSpec) -> list[str]:
    step: dict[str, Any] = {"id": spec.id.rsplit(".", 1)[-1], "card": spec.id}
    if spec.uses_connection:
        step["connection"] = "My connection"
    step["inputs"] = spec.example
    text = yaml.safe_dump(
        [step], sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    return ["```yaml", text.rstrip("\n"), "```"]


def _card(spec: CardSpec) -> list[str]:
    lines = [f"### `{spec.id}` — {spec.title}", "", spec.description, ""]
    if spec.uses_connection:
        lines += ["Runs with a connection (`connection:` names it).", ""]
    lines += inputs_table(spec.inputs)
    lines.append("")
    if spec.nested_inputs:
        nested = ", ".join(f"`{name}`" for name in spec.nested_inputs)
        lines += [f"Nested cards: {nested} (run by this card, not evaluated as data).", ""]
    # A name in parentheses describes the outputs rather than naming one.
    outputs = ", ".join(name if name.startswith("(") else f"`{name}`" for name in spec.outputs)
    outputs = outputs or "none"
    lines += [f"Outputs: {outputs}.", ""]
    if spec.example:
        lines += ["Example step:", "", *_example(spec), ""]
    return lines


def render_card_reference(cards: Iterable[CardSpec]) -> str:
    """Markdown for every card, grouped by family in the order the families first appear."""
    families: dict[str, list[CardSpec]] = {}
    for spec in cards:
        families.setdefault(spec.family, []).append(spec)
    lines = [
        "# Cards",
        "",
        f"Generated by `{COMMAND}` from the cards' own definitions; edit the cards, not this "
        "file. Any input may hold `{{ … }}` expressions, filled in before the card runs.",
        "",
    ]
    for family, specs in families.items():
        ids = ", ".join(f"`{spec.id}`" for spec in specs)
        lines.append(f"- **{family}**: {ids}")
    lines.append("")
    for family, specs in families.items():
        lines += [f"## {family}", ""]
        for spec in specs:
            lines += _card(spec)
    lines += _objects(spec for specs in families.values() for spec in specs)
    return "\n".join(lines).rstrip("\n") + "\n"


def known_cards() -> list[CardSpec]:
    """Every registered card, and the data cards whether or not the registry has them yet."""
    from cardflow.cards import data, registry

    cards = {spec.id: spec for spec in registry.CARDS.values()}
    for spec in data.CARDS:
        cards.setdefault(spec.id, spec)
    return list(cards.values())


def main() -> None:
    # Bytes, so the file is UTF-8 with \n line ends whatever the platform and locale.
    sys.stdout.buffer.write(render_card_reference(known_cards()).encode("utf-8"))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
