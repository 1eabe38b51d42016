"""Shared pieces of the commands' argument parsers: switches, help texts, one-line errors.

* :func:`parse_bool` reads True/False/1/0/yes/no (the seed's ``type=bool`` read "False" as True).
* :func:`add_switch` adds a bool option that accepts both spellings: ``--flag`` (True) and ``--flag True|False``
  (the seed's).
* :func:`field_docs` reads the documentation of a dataclass's fields from its source (a docstring under the
  field, else the comment on its line or the comment lines right above it), so that `nerfw train --help` is
  built from the same text a reader of nerfw/training/config.py sees.
* :class:`HelpFormatter` keeps paragraphs of descriptions and adds "(default: ...)" to every option whose help
  does not state its default already.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got '{text}'")


def add_switch(parser, name: str, help: str, default=False, **kwargs) -> argparse.Action:
    """A bool option: ``--name`` alone means True; ``--name True|False`` (any parse_bool spelling) also works."""
    return parser.add_argument(name, nargs="?", const=True, default=default, type=parse_bool,
                               metavar="True|False", help=help, **kwargs)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written (paragraphs kept); option help wrapped, with the default appended when the text
    does not mention it and a default exists (not None / SUPPRESS)."""

    def __init__(self, prog, indent_increment=2, max_help_position=32, width=None):
        super().__init__(prog, indent_increment, max_help_position, width)

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, argparse.SUPPRESS) or not action.option_strings:
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
        from nerfw.errors import ConfigError

        raise ConfigError(message)


def field_docs(cls) -> dict[str, str]:
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
    names = {f.name for f in dataclasses.fields(cls)}
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
