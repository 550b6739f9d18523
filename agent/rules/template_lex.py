"""Go ``text/template``'s lexer, and Go's string and number literals.

:func:`lex` turns a template into tokens the way Go's ``text/template/parse``
lexer does: text between actions (trimmed by ``{{-`` / ``-}}``), comments
dropped, and inside ``{{ }}`` identifiers, keywords, ``.Fields``, ``$vars``,
strings, numbers and punctuation. A lexical error (``unclosed action``,
``bad number syntax: "1x"``) becomes an ``error`` token, reported by the
parser with Go's wording.

>>> [t.kind for t in lex("a {{- .B | f }}")]
['text', '{{', 'field', 'space', '|', 'space', 'ident', 'space', '}}', 'eof']
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Tok(NamedTuple):
    kind: str
    pos: int
    val: str


_SPACE = " \t\r\n"
KEYWORDS = frozenset(
    (
        "block",
        "break",
        "continue",
        "define",
        "else",
        "end",
        "if",
        "range",
        "nil",
        "template",
        "with",
    )
)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_QUOTE_ESC = {v: "\\" + k for k, v in _ESCAPES.items()} | {'"': '\\"'}
_OCTAL_INT = re.compile(r"[+-]?0[0-7_]+")


def go_quote(text: str) -> str:
    """``strconv.Quote``: a double-quoted Go string literal."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _QUOTE_ESC:
            out.append(_QUOTE_ESC[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_rune(ch: str) -> str:
    """Go's ``%#U`` of a character: ``U+0040 '@'``."""
    text = f"U+{ord(ch):04X}"
    return f"{text} '{ch}'" if ch.isprintable() else text


# --- lexer -------------------------------------------------------------------


class _LexError(Exception):
    def __init__(self, pos: int, msg: str) -> None:
        super().__init__(msg)
        self.pos, self.msg = pos, msg


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalnum()


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _at_terminator(text: str, pos: int) -> bool:
    return (
        pos >= len(text)
        or text[pos] in _SPACE
        or text[pos] in ".,|:()"
        or text[pos : pos + 2] == "}}"
    )


def _right_delim(text: str, pos: int) -> int:
    """Length of the right delimiter at ``pos`` (4 with a `` -`` trim marker), else 0."""
    if text.startswith("}}", pos):
        return 2
    if text.startswith("-}}", pos + 1) and text[pos] in _SPACE:
        return 4
    return 0


def lex(text: str) -> list[Tok]:
    """Tokens of ``text``; a lexical error becomes an ``error`` token before ``eof``."""
    toks: list[Tok] = []
    pos = 0
    try:
        while pos < len(text):
            start = text.find("{{", pos)
            if start < 0:
                toks.append(Tok("text", pos, text[pos:]))
                break
            trim = text[start + 2 : start + 3] == "-" and text[start + 3 : start + 4] in tuple(
                _SPACE
            )
            end = pos + len(text[pos:start].rstrip(_SPACE)) if trim else start
            if end > pos:
                toks.append(Tok("text", pos, text[pos:end]))
            pos = _lex_action(text, start, start + (4 if trim else 2), toks)
    except _LexError as exc:
        toks.append(Tok("error", exc.pos, exc.msg))
    toks.append(Tok("eof", len(text), ""))
    return toks


def _lex_comment(text: str, pos: int) -> int:
    end = text.find("*/", pos + 2)
    if end < 0:
        raise _LexError(pos, "unclosed comment")
    delim = _right_delim(text, end + 2)
    if not delim:
        raise _LexError(pos, "comment ends before closing delimiter")
    after = end + 2 + delim
    return _skip(text, after, _SPACE) if delim == 4 else after


def _lex_action(text: str, start: int, pos: int, toks: list[Tok]) -> int:
    if text.startswith("/*", pos):
        return _lex_comment(text, pos)
    toks.append(Tok("{{", start, "{{"))
    depth = 0
    while True:
        delim = _right_delim(text, pos)
        if delim:
            if depth:
                raise _LexError(pos, "unclosed left paren")
            toks.append(Tok("}}", pos, "}}"))
            return _skip(text, pos + delim, _SPACE) if delim == 4 else pos + delim
        if pos >= len(text):
            raise _LexError(pos, "unclosed action")
        ch = text[pos]
        if ch in _SPACE:
            end = _skip(text, pos, _SPACE)
            if text.startswith("-}}", end):
                end -= 1  # that space belongs to the trim marker
            if end > pos:
                toks.append(Tok("space", pos, text[pos:end]))
            pos = end
            continue
        if ch in "()":
            depth += 1 if ch == "(" else -1
            if depth < 0:
                raise _LexError(pos, "unexpected right paren")
            toks.append(Tok(ch, pos, ch))
            pos += 1
            continue
        pos = _lex_token(text, pos, toks)


def _lex_token(text: str, pos: int, toks: list[Tok]) -> int:
    ch = text[pos]
    nxt = text[pos + 1 : pos + 2]
    if ch == "=" or ch == "|":
        toks.append(Tok(ch, pos, ch))
        return pos + 1
    if ch == ":":
        if nxt != "=":
            raise _LexError(pos, "expected :=")
        toks.append(Tok(":=", pos, ":="))
        return pos + 2
    if ch in "\"'`":
        return _lex_quote(text, pos, toks)
    if ch == "$" or (ch == "." and not nxt.isdigit()):
        return _lex_field(text, pos, toks)
    if ch in "+-." or ch.isdigit():
        return _lex_number(text, pos, toks)
    if _is_alnum(ch):
        end = pos
        while end < len(text) and _is_alnum(text[end]):
            end += 1
        if not _at_terminator(text, end):
            raise _LexError(pos, f"bad character {go_rune(text[end])}")
        word = text[pos:end]
        kind = word if word in KEYWORDS else "bool" if word in ("true", "false") else "ident"
        toks.append(Tok(kind, pos, word))
        return end
    if ch.isascii() and ch.isprintable():
        toks.append(Tok("char", pos, ch))
        return pos + 1
    raise _LexError(pos, f"unrecognized character in action: {go_rune(ch)}")


def _lex_field(text: str, pos: int, toks: list[Tok]) -> int:
    end = pos + 1
    if _at_terminator(text, end):
        toks.append(Tok("var" if text[pos] == "$" else "dot", pos, text[pos]))
        return end
    while end < len(text) and _is_alnum(text[end]):
        end += 1
    if not _at_terminator(text, end):
        raise _LexError(pos, f"bad character {go_rune(text[end])}")
    toks.append(Tok("var" if text[pos] == "$" else "field", pos, text[pos:end]))
    return end


def _lex_quote(text: str, pos: int, toks: list[Tok]) -> int:
    quote = text[pos]
    if quote == "`":
        end = text.find("`", pos + 1)
        if end < 0:
            raise _LexError(pos, "unterminated raw quoted string")
        toks.append(Tok("raw", pos, text[pos : end + 1]))
        return end + 1
    i = pos + 1
    while i < len(text) and text[i] != quote and text[i] != "\n":
        i += 2 if text[i] == "\\" and text[i + 1 : i + 2] not in ("", "\n") else 1
    if i >= len(text) or text[i] != quote:
        what = "quoted string" if quote == '"' else "character constant"
        raise _LexError(pos, f"unterminated {what}")
    toks.append(Tok("string" if quote == '"' else "charconst", pos, text[pos : i + 1]))
    return i + 1


def _lex_number(text: str, pos: int, toks: list[Tok]) -> int:
    end, ok = _scan_number(text, pos)
    if ok and text[end : end + 1] in ("+", "-"):
        end, ok = _scan_number(text, end)
        ok = False  # complex constants (1+2i) are not supported
    if not ok:
        raise _LexError(pos, f"bad number syntax: {go_quote(text[pos:end])}")
    toks.append(Tok("number", pos, text[pos:end]))
    return end


def _scan_number(text: str, pos: int) -> tuple[int, bool]:
    """Go's ``scanNumber``: the end of the number at ``pos`` and whether it is well formed."""
    i = pos + 1 if text[pos] in "+-" else pos
    digits = "0123456789_"
    if text[i : i + 1] == "0":
        i += 1
        prefix = text[i : i + 1].lower()
        bases = {"x": "0123456789abcdefABCDEF_", "o": "01234567_", "b": "01_"}
        if prefix and prefix in bases:
            digits = bases[prefix]
            i += 1
    i = _skip(text, i, digits)
    if text[i : i + 1] == ".":
        i = _skip(text, i + 1, digits)
    exponent = "eE" if len(digits) == 11 else "pP" if len(digits) == 23 else ""
    if exponent and text[i : i + 1] and text[i] in exponent:
        i += 1
        i += 1 if text[i : i + 1] in ("+", "-") else 0
        i = _skip(text, i, "0123456789_")
    if text[i : i + 1] == "i":
        return i + 1, False
    if i < len(text) and _is_alnum(text[i]):
        return i + 1, False
    return i, True


# --- literals ----------------------------------------------------------------


def unquote(token: str) -> str:
    """``strconv.Unquote`` of a string or character literal; ValueError if malformed."""
    quote, body = token[0], token[1:-1]
    if quote == "`":
        return body.replace("\r", "")
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1]
        if esc in _ESCAPES or esc == quote:
            out.append(_ESCAPES.get(esc, esc))
            i += 2
        elif esc in "xuU" or esc in "01234567":
            size = {"x": 2, "u": 4, "U": 8}.get(esc, 3)
            start = i + (1 if size == 3 else 2)
            digits = body[start : start + size]
            code = int(digits, 8 if size == 3 else 16) if len(digits) == size else -1
            if code < 0 or code > 0x10FFFF or 0xD800 <= code < 0xE000 or (size == 3 and code > 255):
                raise ValueError(token)
            out.append(chr(code))
            i = start + size
        else:
            raise ValueError(token)
    return "".join(out)


def number_value(text: str) -> int | float:
    """A number literal as Go's template would treat it: int unless it has . e p."""
    body = text.lstrip("+-")
    hexa = body[:2].lower() == "0x"
    if any(c in body for c in (".pP" if hexa else ".eEpP")):
        if hexa:
            value = float.fromhex(body.replace("_", ""))
            return -value if text.startswith("-") else value
        return float(text)
    if _OCTAL_INT.fullmatch(text):
        return int(text, 8)
    value = int(text, 0)
    if not -(2**63) <= value < 2**63:
        raise OverflowError(text)
    return value
