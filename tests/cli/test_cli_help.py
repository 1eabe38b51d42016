"""Every option of every `nerfw` command explains itself; every command's options are dataclasses turned into its
parser by one builder (nerfw.options): switches accept `--flag` and `--flag True|False`, choices are typed, bad values
are one-line errors."""
import argparse
import dataclasses
import importlib
import typing

import pytest

from nerfw.cli import COMMANDS, main as nerfw_main
from nerfw.errors import ConfigError
from nerfw.options import build_command_parser, field_docs, parse_command, undocumented_options
from nerfw.fields.config import ModelConfig
from nerfw.training.config import TrainConfig, build_parser as train_parser, parse_config


def command_parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(COMMANDS[command][0])
    assert hasattr(module, "build_parser"), f"{COMMANDS[command][0]} has no build_parser()"
    return module.build_parser()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command):
    parser = command_parser(command)
    assert parser.description, f"nerfw {command}: no description"
    missing = undocumented_options(parser)
    assert not missing, f"nerfw {command}: options without a help text: {', '.join(missing)}"
    text = parser.format_help()  # also catches a stray % in a help text
    assert "--help" in text


def test_undocumented_option_is_caught():
    parser = argparse.ArgumentParser(description="x")
    parser.add_argument("--documented", help="what it does, in words")
    parser.add_argument("--bare")
    parser.add_argument("--only_default", help="(default: 3)")
    assert undocumented_options(parser) == ["--bare", "--only_default"]


@pytest.mark.parametrize("cls", [TrainConfig, ModelConfig])
def test_config_fields_are_documented(cls):
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if len(docs.get(f.name, "").split()) < 3]
    assert not missing, f"{cls.__name__}: fields without documentation: {missing}"


def test_train_help_shows_docs_and_defaults(capsys):
    assert nerfw_main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--grid_geo_features INT grid: features passed from the density MLP" in text
    assert "(default: 15)" in text and "NeRFW-pytorch flag" in text
    assert "--resume [True|False]" in text


def test_field_docs_reads_comments_too():
    @dataclasses.dataclass
    class Commented:
        # --- section ruler, not documentation
        a: int = 1  # trailing comment of a
        # comment lines above b,
        # two of them
        b: int = 2
        c: int = 3
        """docstring of c"""
        d: int = 4

    assert field_docs(Commented) == {"a": "trailing comment of a", "b": "comment lines above b, two of them",
                                     "c": "docstring of c"}


@pytest.mark.parametrize("argv,value", [
    (["--resume"], True), (["--resume", "True"], True), (["--resume", "true"], True), (["--resume", "1"], True),
    (["--resume", "False"], False), (["--resume", "0"], False), ([], False),
    (["--resume", "--max_steps", "5"], True), (["--max_steps", "5", "--resume"], True),
])
def test_resume_switch_spellings(argv, value):
    cfg = parse_config(["--data_root_dir", "D", *argv])
    assert cfg.train.resume is value


def test_every_bool_option_is_a_switch():
    parser = train_parser()
    cfg = parse_config(["--data_root_dir", "D", "--use_disp", "--encode_t", "False", "--white_back"])
    assert cfg.model.use_disp is True and cfg.model.encode_t is False and cfg.model.white_back is True
    bools = [a for a in parser._actions if a.metavar == "True|False"]
    assert len(bools) == sum(f.type in (bool, "bool") for cls in (TrainConfig, ModelConfig)
                             for f in dataclasses.fields(cls))
    assert all(a.nargs == "?" and a.const is True for a in bools)


@dataclasses.dataclass(kw_only=True)
class Example:
    path: str
    """a required option (no default)"""
    count: int = 3
    """an integer; arithmetic such as 2*8 is accepted"""
    scale: float | None = None
    """an optional number"""
    mode: typing.Literal["fast", "full"] = "fast"
    """a typed choice"""
    flag: bool = False
    """a switch"""


def test_builder_types_defaults_and_switches():
    opts = parse_command(["--path", "p"], "x", "d", Example)
    assert opts == Example(path="p")  # defaults come from the dataclass, written once
    opts = parse_command(["--path", "p", "--count", "2*8", "--scale", "0.5", "--mode", "full", "--flag"], "x", "d",
                         Example)
    assert (opts.count, opts.scale, opts.mode, opts.flag) == (16, 0.5, "full", True)
    for spelling, value in (("True", True), ("no", False), ("1", True)):
        assert parse_command(["--path", "p", "--flag", spelling], "x", "d", Example).flag is value
    text = build_command_parser("x", "d", Example).format_help()
    assert "an integer; arithmetic such as 2*8 is accepted (default: 3)" in " ".join(text.split())


@pytest.mark.parametrize("argv,message", [
    ([], "required: --path"), (["--path", "p", "--mode", "slow"], "invalid choice: 'slow'"),
    (["--path", "p", "--count", "x"], "expected an integer"), (["--path", "p", "--flag", "maybe"], "expected True"),
    (["--path", "p", "--unknown", "1"], "unrecognized arguments: --unknown 1"),
])
def test_builder_bad_values_are_one_line_errors(argv, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_command(argv, "x", "d", Example)
    assert "\n" not in str(info.value)


def test_several_classes_share_one_command_line():
    @dataclasses.dataclass(kw_only=True)
    class More:
        OPTIONS_GROUP: typing.ClassVar[str] = "more options"

        other: int = 1
        """another class's option, in its own help section"""

    example, more = parse_command(["--path", "p", "--other", "5"], "x", "d", Example, More)
    assert example.path == "p" and more.other == 5
    assert "more options:" in build_command_parser("x", "d", Example, More).format_help()


def test_dataset_format_choices_are_the_readers():
    from nerfw.data.dataset_options import DatasetFormat
    from nerfw.data.loader import FORMATS

    assert typing.get_args(DatasetFormat) == ("auto", *FORMATS)


def test_eval_protocol_choices_are_the_protocols():
    from nerfw.cli.evaluate import EvalOptions
    from nerfw.evaluation.evaluate import PROTOCOLS

    assert set(typing.get_args(typing.get_type_hints(EvalOptions)["appearance"])) == set(PROTOCOLS)


def test_localize_defaults_are_the_parameters():
    """`nerfw localize`'s defaults are MapParams' and LocalizeParams' own (written once)."""
    from nerfw.cli.localize import LocalizeOptions
    from nerfw.localization.localize import LocalizeParams
    from nerfw.localization.mapping import MapParams

    opts = LocalizeOptions(run="r")
    for params in (MapParams(), LocalizeParams()):
        for f in dataclasses.fields(params):
            if hasattr(opts, f.name) and f.name not in ("min_opacity", "chunk"):
                assert getattr(opts, f.name) == getattr(params, f.name), f.name
    assert opts.min_opacity == MapParams().min_opacity


@pytest.mark.parametrize("command,argv", [
    ("export", ["--data_root_dir", "D", "--out", "t.json", "--absolute_paths"]),
    ("export", ["--data_root_dir", "D", "--out", "t.json", "--absolute_paths", "True"]),
    ("make-scene", ["--out", "o", "--overwrite"]),
    ("render", ["--run", "r", "--out", "o", "--no_video", "True"]),
])
def test_other_commands_switches(command, argv):
    args = vars(command_parser(command).parse_args(argv))
    assert True in args.values()


def test_demo_scores_with_the_eval_protocol():
    """`nerfw demo` prints the score `nerfw eval` would give: the same appearance-fit steps."""
    from nerfw.cli.demo import DemoOptions
    from nerfw.cli.evaluate import EvalOptions
    from nerfw.model.appearance_fit import FitOptions

    assert DemoOptions.fit_steps == FitOptions.steps == EvalOptions.fit_steps
