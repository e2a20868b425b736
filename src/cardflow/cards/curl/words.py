"""A pasted command line → curl's arguments, split as a POSIX shell would (``shlex``).

Before splitting: line continuations are joined (a backslash or, from PowerShell, a
backtick at a line's end; a Windows ``cmd`` paste's ``^`` at a line's end, whose ``^``
escapes are then undone), and ``$'…'`` strings are rewritten as plain single-quoted ones.
After: a shell prompt (``$ ``), variable assignments before ``curl`` and comment lines
above it are skipped, and whatever follows a control operator (``| jq``, ``&& …``,
``; …``, ``> file``) is left out with a warning.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from cardflow.errors import InvalidInput

MAX_COMMAND_CHARS = 128 * 1024
FIELD = "command"

_BACKSLASH_CONTINUATION = re.compile(r"\\\r?\n")
_CARET_CONTINUATION = re.compile(r"\^\r?\n")
_BACKTICK_CONTINUATION = re.compile(r"`\r?\n")
_CARET_ESCAPE = re.compile(r"\^(.)")
# A $'…' string, or a stretch the shell reads otherwise (another quoted string, an escaped
# character), matched in order so that a $' inside quotes is left alone.
_ANSI_C = re.compile(r"""\$'((?:[^'\\]|\\.)*)'|'[^']*'|"(?:[^"\\]|\\.)*"|\\.""", re.DOTALL)
_ANSI_C_ESCAPE = re.compile(
    r"\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)", re.DOTALL
)
_SIMPLE_ESCAPES = {
    "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
    "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?",
}  # fmt: skip
# With punctuation_chars, shlex gives the shell's operators (| && ; > < ...) as tokens of
# their characters only; a quoted "<x/>" is a word, never one of these.
_OPERATOR = re.compile(r"^[();<>|&]+$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PROMPT = {"$", "%", ">", "#", "PS>"}
_LEADING_COMMENTS = re.compile(r"\A(?:[ \t]*(?:#[^\n]*)?\r?\n)*")


@dataclass
class Words:
    """curl's arguments (without ``curl`` itself) and what was left out."""

    args: list[str]
    warnings: list[str] = field(default_factory=list)


def _ansi_c_escape(match: re.Match[str]) -> str:
    code = match.group(1)
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code]
    if code[0] in "xuU":
        return chr(int(code[1:], 16))
    if code[0].isdigit():
        return chr(int(code, 8) & 0xFF)
    if code[0] == "c":
        return chr(ord(code[1].upper()) ^ 0x40)
    return "\\" + code  # unknown escapes stay as typed, as bash leaves them


def _ansi_c(match: re.Match[str]) -> str:
    if match.group(1) is None:
        return match.group(0)
    return shlex.quote(_ANSI_C_ESCAPE.sub(_ansi_c_escape, match.group(1)))


def _joined(text: str) -> str:
    """The command on one line: continuations joined, ``cmd`` carets undone."""
    if _CARET_CONTINUATION.search(text):
        # Windows cmd: ^ escapes the next character ("^{^\^"a^\^":1^}") and ends lines.
        text = _CARET_CONTINUATION.sub(" ", text)
        text = _CARET_ESCAPE.sub(r"\1", text)
    text = _BACKSLASH_CONTINUATION.sub(" ", text)
    text = _BACKTICK_CONTINUATION.sub(" ", text)  # PowerShell
    # a Windows paste of a POSIX command: lines end "\\\r\n" (handled) or stray "\r"
    return text.replace("\r\n", "\n")


def split_command(command: str) -> Words:
    """The arguments given to curl, or InvalidInput (field ``command``) saying what is wrong."""
    if len(command) > MAX_COMMAND_CHARS:
        raise InvalidInput(
            f"The command is {len(command):,} characters long; a pasted curl command may have "
            f"at most {MAX_COMMAND_CHARS:,}.",
            field=FIELD,
        )
    if not command.strip():
        raise InvalidInput(
            "Paste a curl command, e.g. curl https://api.example.com/v1/users.", field=FIELD
        )
    # Docs put comment lines above the command ("# Curl command"); any other "#" is kept
    # as typed (a URL's fragment, a body's text).
    text = _ANSI_C.sub(_ansi_c, _joined(_LEADING_COMMENTS.sub("", command)))
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError as exc:
        reason = (
            "a quote is not closed"
            if "quotation" in str(exc)
            else "it ends with a lone backslash"
            if "escaped" in str(exc)
            else str(exc)
        )
        raise InvalidInput(
            f"The command cannot be read as a shell command line: {reason}.", field=FIELD
        ) from None
    return _curl_args(tokens)


def _curl_args(tokens: list[str]) -> Words:
    start = 0
    while start < len(tokens) and (tokens[start] in _PROMPT or _ASSIGNMENT.match(tokens[start])):
        start += 1
    if start < len(tokens) and tokens[start] == "sudo":
        start += 1
    program = tokens[start] if start < len(tokens) else ""
    if program.replace("\\", "/").rsplit("/", 1)[-1].lower() not in ("curl", "curl.exe"):
        raise InvalidInput(
            "This is not a curl command: it should start with curl (e.g. curl -X POST "
            "https://api.example.com/v1/users -d '{...}').",
            field=FIELD,
        )
    words = Words([])
    for index in range(start + 1, len(tokens)):
        token = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        redirect = token.isdigit() and following[:1] in ("<", ">") and _OPERATOR.match(following)
        if _OPERATOR.match(token) or redirect:
            # Named by its operator only: what follows may be another command with secrets.
            operator = following if token.isdigit() else token
            words.warnings.append(
                f"Only the curl command was read: what follows {operator.split()[0]!r} is left out."
            )
            break
        words.args.append(token)
    return words
