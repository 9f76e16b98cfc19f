"""BPMN sequence-flow conditions translated to CEL guards, never evaluated.

SpiffWorkflow runs a condition as Python through its script engine, and Camunda runs JUEL or
FEEL (or Groovy, JavaScript, ...) through full expression and script engines: a condition can
call methods, reach classes and start processes. A BPMN file is untrusted input, so nothing in
it is evaluated, compiled or handed to any engine here. Instead a small hand-written tokenizer
and recursive-descent parser read the one subset that real models mostly use — comparisons of
top-level fields with literals, combined with and/or/not — and write the equivalent CEL, which
the engine's guards evaluate with a library that has no I/O and no host access. Everything else
is refused with a reason naming why, so the modeller can rewrite it in CEL (``lapor:guard``)
rather than have it guessed.

Grammar, the same for every dialect (only the spelling of the operators differs)::

    condition  := or
    or         := and (OR and)*
    and        := unary (AND unary)*
    unary      := NOT negated | "(" or ")" | comparison
    negated    := NOT negated | "(" or ")" | value          (FEEL: NOT "(" or ")" only)
    comparison := value [CMP value]
    value      := field | string | ["-"] number | true | false | null

    JUEL ``${...}``/``#{...}``: CMP ``== eq != ne < lt > gt <= le >= ge``, AND ``&& and``,
    OR ``|| or``, NOT ``! not``, strings in ' or ". FEEL (``=...``): CMP ``= != < > <= >=``,
    ``and``, ``or``, ``not(...)``, strings in " only. CEL (bare text): ``== != < > <= >=``,
    ``&&``, ``||``, ``!``, strings in ' or ". Strings escape only \\" \\' \\\\; numbers are
    digits with an optional fraction (at most 18 digits); a field is ``[A-Za-z_][A-Za-z0-9_]*``.
    A comparison reads a field on at least one side and never compares with null; a bare
    ``true``/``false`` is accepted (``${true}`` marks always-taken flows). The text is at most
    500 characters and nests at most 8 groups or negations.

A bare field ``x`` becomes ``data.x == true`` and its negation ``data.x != true`` rather than
``data.x`` / ``!data.x``: a field holding a string or number then gives false instead of a
non-boolean result, and the guard stays strictly boolean. A negated group becomes ``!(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Final

__all__ = ["ConditionError", "Guard", "translate_condition"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


MAX_LENGTH: Final = 500
MAX_DEPTH: Final = 8
MAX_DIGITS: Final = 18  # 18 digits always fit CEL's int64; longer literals are not plausible

# Substrings, because languages are named both by word and by URI (e.g. "text/x-groovy").
_SCRIPT_WORDS: Final = ("groovy", "javascript", "js", "python", "jython", "ruby")
_JUEL_NAMES: Final = frozenset({"el", "uel", "juel", "javax.el", "jakarta.el"})

# Field names CEL cannot select as ``data.<name>`` (reserved words or literals).
_CEL_RESERVED: Final = _words(
    "true false null in as break const continue else for function if import let loop package "
    "namespace return var void while"
)
_IDENT_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_PART: Final = _IDENT_START | frozenset("0123456789")
_DIGITS: Final = frozenset("0123456789")
_TWO_CHAR_OPS: Final = frozenset({"==", "!=", "<=", ">=", "&&", "||"})
_ONE_CHAR_OPS: Final = frozenset("<>=!().-")
_ESCAPES: Final = frozenset("\"'\\")


class ConditionError(ValueError):
    """A condition that is not translated; ``reason`` is one clause for "flow X: <reason>"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Guard:
    """The CEL equivalent of a condition and the data fields it reads (sorted, unique)."""

    cel: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Dialect:
    name: str
    comparisons: dict[str, str]  # spelling -> CEL operator
    and_words: frozenset[str]
    or_words: frozenset[str]
    not_words: frozenset[str]
    not_needs_parens: bool  # FEEL's not is a function: not(x)
    keywords: frozenset[str]  # words that can never be a field in this dialect
    single_quotes: bool


_CMP_SYMBOLS: Final = {"!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}

_JUEL: Final = _Dialect(
    name="JUEL",
    comparisons={
        **_CMP_SYMBOLS,
        "==": "==",
        "eq": "==",
        "ne": "!=",
        "lt": "<",
        "gt": ">",
        "le": "<=",
        "ge": ">=",
    },
    and_words=frozenset({"&&", "and"}),
    or_words=frozenset({"||", "or"}),
    not_words=frozenset({"!", "not"}),
    not_needs_parens=False,
    keywords=_words("and or not eq ne lt gt le ge empty div mod instanceof"),
    single_quotes=True,
)
_FEEL: Final = _Dialect(
    name="FEEL",
    comparisons={**_CMP_SYMBOLS, "=": "=="},
    and_words=frozenset({"and"}),
    or_words=frozenset({"or"}),
    not_words=frozenset({"not"}),
    not_needs_parens=True,
    keywords=_words(
        "and or not in between instance of if then else for some every satisfies function return"
    ),
    single_quotes=False,
)
_CEL: Final = _Dialect(
    name="CEL",
    comparisons={**_CMP_SYMBOLS, "==": "=="},
    and_words=frozenset({"&&"}),
    or_words=frozenset({"||"}),
    not_words=frozenset({"!"}),
    not_needs_parens=False,
    keywords=frozenset(),
    single_quotes=True,
)


class _Kind(Enum):
    NAME = "name"
    INT = "int"
    DECIMAL = "decimal"
    STRING = "string"
    OP = "op"
    END = "end"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str  # for STRING: the decoded value


# The tree the parser builds; each node knows how to write itself as CEL.
@dataclass(frozen=True, slots=True)
class _Field:
    name: str


@dataclass(frozen=True, slots=True)
class _Literal:
    cel: str
    kind: str  # "string", "number", "bool" or "null"


@dataclass(frozen=True, slots=True)
class _Truth:
    field: _Field


@dataclass(frozen=True, slots=True)
class _Compare:
    op: str
    left: _Field | _Literal
    right: _Field | _Literal


@dataclass(frozen=True, slots=True)
class _Not:
    inner: _Node


@dataclass(frozen=True, slots=True)
class _Logic:
    op: str  # "&&" or "||"
    items: tuple[_Node, ...]


_Node = _Truth | _Compare | _Not | _Logic | _Literal
_Operand = Callable[[], _Node]


def translate_condition(text: str, language: str | None) -> Guard:
    """The CEL guard equivalent to a BPMN condition, or ``ConditionError`` saying why not."""
    dialect = _dialect_for_language(language)
    source = text.strip()
    if len(source) > MAX_LENGTH:
        raise ConditionError(
            f"the condition is {len(source)} characters long; at most {MAX_LENGTH} are translated"
        )
    dialect, body = _body(source, dialect)
    if not body.strip():
        raise ConditionError("the condition is empty")
    tree = _Parser(body, dialect, source).parse()
    return Guard(cel=_emit(tree), fields=tuple(sorted(_fields(tree))))


def _dialect_for_language(language: str | None) -> _Dialect | None:
    """The dialect a language attribute names; ``None`` means: tell from the text."""
    name = (language or "").strip()
    lowered = name.lower()
    if not lowered:
        return None
    if any(word in lowered for word in _SCRIPT_WORDS):
        raise ConditionError(f"conditions in {name} are scripts and are never run")
    if "feel" in lowered:
        return _FEEL
    if "juel" in lowered or lowered in _JUEL_NAMES:
        return _JUEL
    if lowered == "cel" or "cel.dev" in lowered:
        return _CEL
    if "xpath" in lowered:
        # BPMN 2.0 declares XPath the default language and modellers stamp it on files whose
        # conditions are really JUEL or FEEL (Camunda ignores it): the text's delimiters decide.
        return None
    raise ConditionError(
        f"conditions in {name} are not translated; write them in FEEL, JUEL or CEL"
    )


def _body(source: str, dialect: _Dialect | None) -> tuple[_Dialect, str]:
    """The dialect and the expression inside its delimiters (``${...}``, ``#{...}``, ``=...``)."""
    delimited = source.startswith(("${", "#{"))
    if dialect is None:
        if delimited:
            dialect = _JUEL
        elif source.startswith("="):
            dialect = _FEEL
        else:
            dialect = _CEL
    if dialect is _JUEL:
        # Outside ${...} JUEL text is a literal string, and "${a} ${b}" concatenates two:
        # neither is a condition, so exactly one delimited expression is accepted.
        if not delimited:
            raise ConditionError(
                f"the JUEL condition {_shown(source)} is not one ${{...}} expression"
            )
        if not source.endswith("}"):
            raise ConditionError(_not_plain(source))
        return dialect, source[2:-1]
    if dialect is _FEEL and source.startswith("="):
        return dialect, source[1:]  # Zeebe marks expressions with "="; DMN-style FEEL does not
    return dialect, source


class _Parser:
    def __init__(self, body: str, dialect: _Dialect, source: str) -> None:
        self._dialect = dialect
        self._source = source
        self._tokens = _tokenize(body, dialect, source)
        self._position = 0
        self._depth = 0

    def parse(self) -> _Node:
        tree = self._or()
        if self._peek().kind is not _Kind.END:
            raise self._refuse()
        return tree

    def _refuse(self) -> ConditionError:
        return ConditionError(_not_plain(self._source))

    def _peek(self, ahead: int = 0) -> _Token:
        index = min(self._position + ahead, len(self._tokens) - 1)
        return self._tokens[index]

    def _take(self) -> _Token:
        token = self._peek()
        self._position = min(self._position + 1, len(self._tokens) - 1)
        return token

    def _is_word(self, token: _Token, words: frozenset[str]) -> bool:
        return token.kind in (_Kind.OP, _Kind.NAME) and token.text in words

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ConditionError(f"the condition nests deeper than {MAX_DEPTH} levels")

    def _or(self) -> _Node:
        return self._chain("||", self._dialect.or_words, self._and)

    def _and(self) -> _Node:
        return self._chain("&&", self._dialect.and_words, lambda: self._unary(comparison=True))

    def _chain(self, op: str, words: frozenset[str], operand: _Operand) -> _Node:
        items = [operand()]
        while self._is_word(self._peek(), words):
            self._take()
            items.append(operand())
        if len(items) == 1:
            return items[0]
        flat: list[_Node] = []
        for item in items:  # a && (b && c) is a && b && c: one level, no needless parentheses
            flat.extend(item.items if isinstance(item, _Logic) and item.op == op else (item,))
        return _Logic(op, tuple(flat))

    def _unary(self, *, comparison: bool) -> _Node:
        token = self._peek()
        if self._is_word(token, self._dialect.not_words):
            self._take()
            if self._dialect.not_needs_parens and not self._is_op(self._peek(), "("):
                raise self._refuse()
            grouped = self._is_op(self._peek(), "(")
            if not grouped:  # not(...) is one level: its parentheses count it
                self._enter()
            # Not binds tighter than a comparison in JUEL and CEL (!a == b is (!a) == b), so
            # what follows a not is a value or a group; a comparison after it is refused.
            inner = self._unary(comparison=False)
            if not grouped:
                self._depth -= 1
            return _Not(inner)
        if self._is_op(token, "("):
            self._take()
            self._enter()
            inner = self._or()
            if not self._is_op(self._take(), ")"):
                raise self._refuse()
            self._depth -= 1
            return inner
        left = self._value()
        operator = self._comparison_operator() if comparison else None
        if operator is None:
            return self._alone(left)
        right = self._value()
        return self._compare(operator, left, right)

    def _is_op(self, token: _Token, text: str) -> bool:
        return token.kind is _Kind.OP and token.text == text

    def _comparison_operator(self) -> str | None:
        token = self._peek()
        if token.kind in (_Kind.OP, _Kind.NAME) and token.text in self._dialect.comparisons:
            self._take()
            return self._dialect.comparisons[token.text]
        return None

    def _alone(self, value: _Field | _Literal) -> _Node:
        if isinstance(value, _Field):
            return _Truth(value)
        if value.kind == "bool":  # ${true} is how many models mark an always-taken flow
            return value
        raise self._refuse()

    def _compare(self, op: str, left: _Field | _Literal, right: _Field | _Literal) -> _Compare:
        sides = (left, right)
        if any(isinstance(side, _Literal) and side.kind == "null" for side in sides):
            # JUEL, FEEL and CEL each treat null differently (coercion, three-valued logic,
            # a missing key is an error): no single translation would mean the same thing.
            raise ConditionError("null comparisons are not translated")
        if not any(isinstance(side, _Field) for side in sides):
            raise ConditionError(
                f"the condition {_shown(self._source)} compares literals only; "
                "a comparison reads a field"
            )
        ordering = op not in ("==", "!=")
        if ordering and any(isinstance(side, _Literal) and side.kind == "bool" for side in sides):
            raise ConditionError("true and false have no order; compare them with == or !=")
        return _Compare(op, left, right)

    def _value(self) -> _Field | _Literal:
        token = self._take()
        if token.kind is _Kind.STRING:
            return _Literal(_cel_string(token.text), "string")
        if token.kind in (_Kind.INT, _Kind.DECIMAL):
            return _Literal(_cel_number(token, negative=False, source=self._source), "number")
        if self._is_op(token, "-"):
            number = self._take()
            if number.kind not in (_Kind.INT, _Kind.DECIMAL):
                raise self._refuse()  # -x is arithmetic on a field
            return _Literal(_cel_number(number, negative=True, source=self._source), "number")
        if token.kind is not _Kind.NAME:
            raise self._refuse()
        if token.text in ("true", "false"):
            return _Literal(token.text, "bool")
        if token.text == "null":
            return _Literal("null", "null")
        if token.text in self._dialect.keywords:
            raise self._refuse()
        return self._field(token.text)

    def _field(self, name: str) -> _Field:
        path = [name]
        while self._is_op(self._peek(), ".") and self._peek(1).kind is _Kind.NAME:
            self._take()
            path.append(self._take().text)
        if self._is_op(self._peek(), "(") or self._is_op(self._peek(), "."):
            raise self._refuse()  # a call (a(), a.b()) or a dangling dot: never plain
        if len(path) > 1:
            raise ConditionError(
                f"{'.'.join(path)} is a field path, not a top-level field; "
                "write it in CEL with lapor:guard"
            )
        if name in _CEL_RESERVED:
            raise ConditionError(
                f"the field name {name} is reserved in CEL; write it in CEL with lapor:guard"
            )
        return _Field(name)


def _tokenize(body: str, dialect: _Dialect, source: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    length = len(body)
    while position < length:
        char = body[position]
        if char.isspace():
            position += 1
        elif char in _IDENT_START:
            end = position + 1
            while end < length and body[end] in _IDENT_PART:
                end += 1
            tokens.append(_Token(_Kind.NAME, body[position:end]))
            position = end
        elif char in _DIGITS:
            position = _read_number(body, position, tokens, source)
        elif char in "'\"":
            if char == "'" and not dialect.single_quotes:
                raise ConditionError(
                    f"the {dialect.name} condition {_shown(source)} quotes a string with '; "
                    f"{dialect.name} strings are written in double quotes"
                )
            position = _read_string(body, position, tokens, source)
        elif body[position : position + 2] in _TWO_CHAR_OPS:
            tokens.append(_Token(_Kind.OP, body[position : position + 2]))
            position += 2
        elif char in _ONE_CHAR_OPS:
            tokens.append(_Token(_Kind.OP, char))
            position += 1
        else:
            raise ConditionError(_not_plain(source))
    tokens.append(_Token(_Kind.END, ""))
    return tokens


def _read_number(body: str, start: int, tokens: list[_Token], source: str) -> int:
    end = start
    while end < len(body) and body[end] in _DIGITS:
        end += 1
    kind = _Kind.INT
    if end + 1 < len(body) and body[end] == "." and body[end + 1] in _DIGITS:
        kind = _Kind.DECIMAL
        end += 1
        while end < len(body) and body[end] in _DIGITS:
            end += 1
    if end < len(body) and (body[end] in _IDENT_PART or body[end] == "."):
        raise ConditionError(_not_plain(source))  # 1e5, 10L, 1.x: not a plain number
    tokens.append(_Token(kind, body[start:end]))
    return end


def _read_string(body: str, start: int, tokens: list[_Token], source: str) -> int:
    quote = body[start]
    chars: list[str] = []
    position = start + 1
    while position < len(body):
        char = body[position]
        if char == quote:
            tokens.append(_Token(_Kind.STRING, "".join(chars)))
            return position + 1
        if char == "\\":
            escaped = body[position + 1 : position + 2]
            if not escaped or escaped not in _ESCAPES:
                raise ConditionError(
                    f"the condition {_shown(source)} has a string escape other than "
                    "\\\", \\' or \\\\"
                )
            chars.append(escaped)
            position += 2
            continue
        chars.append(char)
        position += 1
    raise ConditionError(f"the condition {_shown(source)} has a string that is never closed")


def _cel_number(token: _Token, *, negative: bool, source: str) -> str:
    whole, _, fraction = token.text.partition(".")
    if len(whole) + len(fraction) > MAX_DIGITS:
        raise ConditionError(f"the number {token.text} has more than {MAX_DIGITS} digits")
    # CEL has no octal-looking literals to worry about once the leading zeros are gone.
    text = str(int(whole)) + (f".{fraction}" if token.kind is _Kind.DECIMAL else "")
    is_zero = int(whole) == 0 and not fraction.strip("0")
    return f"-{text}" if negative and not is_zero else text


def _cel_string(value: str) -> str:
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _emit(node: _Node) -> str:
    if isinstance(node, _Literal):
        return node.cel
    if isinstance(node, _Truth):
        return f"data.{node.field.name} == true"
    if isinstance(node, _Compare):
        return f"{_operand(node.left)} {node.op} {_operand(node.right)}"
    if isinstance(node, _Not):
        if isinstance(node.inner, _Truth):
            return f"data.{node.inner.field.name} != true"
        return f"!({_emit(node.inner)})"
    # Each group of the other operator is parenthesised, so no reader needs CEL's precedence.
    parts = [
        f"({_emit(item)})" if isinstance(item, _Logic) and item.op != node.op else _emit(item)
        for item in node.items
    ]
    return f" {node.op} ".join(parts)


def _operand(side: _Field | _Literal) -> str:
    return f"data.{side.name}" if isinstance(side, _Field) else side.cel


def _fields(node: _Node) -> set[str]:
    if isinstance(node, _Literal):
        return set()
    if isinstance(node, _Truth):
        return {node.field.name}
    if isinstance(node, _Compare):
        return {side.name for side in (node.left, node.right) if isinstance(side, _Field)}
    if isinstance(node, _Not):
        return _fields(node.inner)
    return set().union(*(_fields(item) for item in node.items))


def _shown(source: str) -> str:
    """The condition as quoted in a reason: one line, and short enough to read."""
    flat = " ".join(source.split())
    return flat if len(flat) <= 80 else flat[:77] + "..."


def _not_plain(source: str) -> str:
    return (
        f"the condition {_shown(source)} is not a plain comparison of fields; "
        "write it in CEL with lapor:guard"
    )
