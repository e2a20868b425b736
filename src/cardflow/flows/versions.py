"""A flow's version history as cardflow shows it, and the line diff of two versions."""

from __future__ import annotations

import difflib
import json
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError

from cardflow.errors import InvalidInput, NotFound
from cardflow.flows.model import FlowDocument, dump_document
from cardflow.views import Timestamp, View

MAX_NOTE_CHARS = 500
# Each side of a diff: more lines are refused (difflib's matching grows with their product).
MAX_DIFF_LINES = 20_000


class FlowVersionNotFound(NotFound):
    type = "flow_version_not_found"


class FlowVersionSummary(View):
    """One saved version of a flow, as its history lists it."""

    number: int = Field(description="1, 2, … per flow; runs record it as flow_version.")
    actor: str = Field(
        description='Who saved it: "token:<API token name>", "web" (the web app), "cli" '
        '(cardflow on the host), "library" or "migration" (the flow as it was when '
        "version history began)."
    )
    note: str | None = Field(description="What the save was for, as given (or null).")
    created_at: Timestamp


class FlowVersionView(FlowVersionSummary):
    """A saved version with its flow document."""

    document: dict[str, Any] = Field(description="The flow document as this save left it.")


DiffKind = Literal["same", "changed", "removed", "added"]


class DiffRow(View):
    """One row of a side-by-side diff: a line of each side, or of one side only."""

    kind: DiffKind
    left: str | None = Field(description="The line of the older side (null: none here).")
    right: str | None = Field(description="The line of the newer side (null: none here).")
    left_number: int | None = Field(description="Its line number, from 1.")
    right_number: int | None = Field(description="Its line number, from 1.")


class FlowVersionDiff(View):
    """Two versions of a flow, exported as YAML (or JSON), compared line by line."""

    from_version: int
    to_version: int
    format: Literal["yaml", "json"]
    changed: bool = Field(description="false: the two documents export the same.")
    rows: list[DiffRow] = Field(description="Side by side, in order.")
    unified: str = Field(description="The same as a unified diff (diff -u).")


def clean_note(note: str | None) -> str | None:
    """The note as stored: stripped, None if empty; InvalidInput if too long."""
    if note is None:
        return None
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidInput(f"The note is longer than {MAX_NOTE_CHARS} characters.", field="note")
    return note or None


def exported(document: dict[str, Any], fmt: Literal["yaml", "json"]) -> str:
    """A stored document as ``cardflow flow export`` writes it (as stored if it no longer
    reads as a flow)."""
    try:
        return dump_document(FlowDocument.model_validate(document), fmt)
    except ValidationError:
        if fmt == "json":
            return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


def diff(
    old: FlowVersionView, new: FlowVersionView, fmt: Literal["yaml", "json"] = "yaml"
) -> FlowVersionDiff:
    left = exported(old.document, fmt).splitlines()
    right = exported(new.document, fmt).splitlines()
    if max(len(left), len(right)) > MAX_DIFF_LINES:
        raise InvalidInput(
            f"The versions export to more than {MAX_DIFF_LINES:,} lines, too many to compare "
            "here; export both (cardflow flow export) and compare the files.",
            field="format",
        )
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [
                DiffRow(
                    kind="same",
                    left=left[i],
                    right=right[j],
                    left_number=i + 1,
                    right_number=j + 1,
                )
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
            continue
        for offset in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + offset, j1 + offset
            has_left, has_right = i < i2, j < j2
            kind: DiffKind = (
                "changed" if has_left and has_right else "removed" if has_left else "added"
            )
            rows.append(
                DiffRow(
                    kind=kind,
                    left=left[i] if has_left else None,
                    right=right[j] if has_right else None,
                    left_number=i + 1 if has_left else None,
                    right_number=j + 1 if has_right else None,
                )
            )
    unified = "".join(
        line + "\n"
        for line in difflib.unified_diff(
            left,
            right,
            fromfile=f"version {old.number}",
            tofile=f"version {new.number}",
            lineterm="",
        )
    )
    return FlowVersionDiff(
        from_version=old.number,
        to_version=new.number,
        format=fmt,
        changed=left != right,
        rows=rows,
        unified=unified,
    )
