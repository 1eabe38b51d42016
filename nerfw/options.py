"""Declaring a command's options: dataclasses in, an argparse parser out, one way for every command.

A command's options are dataclass fields. :func:`build_command_parser` turns them into ``--name`` options:

* the help text is the field's docstring (the string literal under it; :func:`field_docs`), and the default is
  written once, in the field (the help says "(default: ...)" unless it describes the default itself);
* the type comes from the annotation: ``int`` (also arithmetic such as 4*1024, :func:`parse_int`), ``float``,
  ``str``, ``bool`` (a switch: ``--flag`` or ``--flag True|False``, any :func:`parse_bool` spelling),
  ``Literal["a", "b"]`` (choices), and ``X | None`` (default None);
* a field without a default is a required option;
* ``dataclasses.field(metadata=...)`` may add ``group`` (the help's section; a class attribute ``OPTIONS_GROUP:
  ClassVar[str]`` puts all its fields there), ``aliases`` (other spellings), ``metavar`` and ``exclusive`` (options
  sharing this key are mutually exclusive).

:func:`parse_command` parses a command line into one instance per dataclass. A bad value or an unknown option is a
one-line :class:`nerfw.errors.ConfigError` (printed by `nerfw` without a traceback), never a usage dump.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import operator
import textwrap
import tokenize
import types
import typing

from nerfw.errors import ConfigError

_BIN_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
            ast.FloorDiv: operator.floordiv, ast.Pow: operator.pow}


def parse_int(text: str) -> int:
    """An integer, or integer arithmetic such as "4*1024" or "2**12" (no eval: a tiny AST walker)."""
    def walk(node):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and (right > 64 or right < 0):
                raise ValueError
            return _BIN_OPS[type(node.op)](left, right)
        raise ValueError
    try:
        return int(walk(ast.parse(str(text).strip(), mode="eval").body))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        raise argparse.ArgumentTypeError(f"expected an integer such as 4096 or 4*1024, got '{text}'") from None


def parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got '{text}'")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (paragraphs kept); option help wrapped, with the default appended when the text
    does not mention it and a default exists (not None / SUPPRESS)."""

    def __init__(self, prog, indent_increment=2, max_help_position=32, width=None):
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, "", argparse.SUPPRESS) or not action.option_strings:
            return text
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        if action.const is True and action.default is False and action.nargs == "?":
            return text + " (default: off)"
        if isinstance(action, argparse._StoreTrueAction):
            return text + " (switch; default: off)"
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with :class:`HelpFormatter`; errors raise ConfigError (printed by `nerfw` as one line) instead of
    printing the usage and exiting."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):

        raise ConfigError(message)


def field_docs(cls) -> dict[str, str]:
    """{field name: its documentation} of dataclass ``cls`` and the dataclasses it derives from (see
    :func:`_own_field_docs`)."""
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base):
            docs.update(_own_field_docs(base))
    return docs


def _own_field_docs(cls) -> dict[str, str]:
    """{field name: its documentation} read from the source of dataclass ``cls``: the string literal right
    under the field, else the comment on the field's line, else the comment lines directly above it (section
    rulers such as ``# --- data`` are not documentation). Whitespace is collapsed to single spaces."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    full_line: set[int] = set()
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row = tok.start[0]
            comments[row] = tok.string.lstrip("#").strip()
            if not lines[row - 1][: tok.start[1]].strip():
                full_line.add(row)
    body = ast.parse(source).body[0].body
    names = set(getattr(cls, "__annotations__", {}))
    docs: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id in names):
            continue
        nxt = body[i + 1] if i + 1 < len(body) else None
        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            text = nxt.value.value
        elif node.end_lineno in comments and node.end_lineno not in full_line:
            text = comments[node.end_lineno]
        else:
            above, row = [], node.lineno - 1
            while row in full_line and not comments[row].startswith("---"):
                above.insert(0, comments[row])
                row -= 1
            text = " ".join(above)
        text = " ".join(text.split())
        if text:
            docs[node.target.id] = text
    return docs


def undocumented_options(parser: argparse.ArgumentParser) -> list[str]:
    """Option strings of ``parser`` whose help is missing or says nothing but a default (for the help test)."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        text = (action.help or "").strip()
        words = [w for w in text.replace("(", " ").replace(")", " ").split()
                 if not w.lower().startswith("default")]
        if len(words) < 3:
            missing.append("/".join(action.option_strings) or action.dest)
    return missing


# ----------------------------------------------------------------------------- dataclasses -> parser
def _value_type(annotation) -> tuple[object, bool]:
    """(the annotation without ``| None``, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _argument_kwargs(kind) -> dict:
    """argparse keyword arguments (type, choices, metavar) of a field's annotation (without ``| None``)."""
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        parse = {int: parse_int, float: parse_float}.get(type(choices[0]), str)
        return {"type": parse, "choices": choices, "metavar": "{" + ",".join(map(str, choices)) + "}"}
    if kind is int:
        return {"type": parse_int, "metavar": "INT"}
    if kind is float:
        return {"type": parse_float, "metavar": "FLOAT"}
    if kind is str:
        return {"type": str, "metavar": "STR"}
    raise TypeError(f"option type {kind!r} is not supported (int, float, str, bool, Literal, X | None)")


def add_options(parser: argparse.ArgumentParser, cls, suppress_defaults: bool = False) -> None:
    """One ``--name`` option per field of dataclass ``cls`` (see the module docstring). suppress_defaults: options
    not given are absent from the parsed namespace (for callers that merge with other sources, e.g. a config
    file)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    groups: dict[str, argparse._ArgumentGroup] = {}
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata
        target = parser
        group = meta.get("group", getattr(cls, "OPTIONS_GROUP", None))
        if group:
            if group not in groups:
                groups[group] = parser.add_argument_group(group)
            target = groups[group]
        if meta.get("exclusive"):
            if meta["exclusive"] not in exclusive:
                exclusive[meta["exclusive"]] = target.add_mutually_exclusive_group()
            target = exclusive[meta["exclusive"]]
        kind, optional = _value_type(hints[f.name])
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kwargs = {"help": docs.get(f.name, "").replace("%", "%%"), "dest": f.name}
        if suppress_defaults:  # the formatter cannot show a suppressed default: the help states it
            shown = "off" if default is False else "on" if default is True else repr(default) if default == "" else default
            kwargs["help"] = (kwargs["help"] + " " if kwargs["help"] else "") + f"(default: {shown})".replace("%", "%%")
            kwargs["default"] = argparse.SUPPRESS
        elif has_default:
            kwargs["default"] = default
        else:
            kwargs["required"] = True
        if kind is bool:
            kwargs.update(type=parse_bool, nargs="?", const=True, metavar="True|False")
        else:
            kwargs.update(_argument_kwargs(kind))
            if meta.get("metavar"):
                kwargs["metavar"] = meta["metavar"]
        target.add_argument(f"--{f.name}", *(f"--{a}" for a in meta.get("aliases", ())), **kwargs)


def build_command_parser(prog: str, description: str, *option_classes, suppress_defaults: bool = False) -> Parser:
    """The parser of a command whose options are the fields of ``option_classes`` (in order)."""
    parser = Parser(prog=prog, description=description, allow_abbrev=False,
                    argument_default=argparse.SUPPRESS if suppress_defaults else None)
    for cls in option_classes:
        add_options(parser, cls, suppress_defaults)
    return parser


def options_from(namespace: argparse.Namespace | dict, cls):
    """The ``cls`` instance holding the parsed values of its fields (fields not given keep their defaults)."""
    values = vars(namespace) if isinstance(namespace, argparse.Namespace) else namespace
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def parse_command(argv: list[str], prog: str, description: str, *option_classes):
    """Parse a command line into one instance per class of ``option_classes`` (a single instance for one class)."""
    namespace = build_command_parser(prog, description, *option_classes).parse_args(argv)
    parsed = tuple(options_from(namespace, cls) for cls in option_classes)
    return parsed[0] if len(parsed) == 1 else parsed
