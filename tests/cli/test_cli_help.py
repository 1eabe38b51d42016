"""Every option of every `nerfw` command explains itself; switches accept `--flag` and `--flag True|False`."""
import argparse
import dataclasses
import importlib

import pytest

from nerfw.cli import COMMANDS, main as nerfw_main
from nerfw.cli_args import add_switch, field_docs, undocumented_options
from nerfw.model.config import ModelConfig
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
    assert "(default: 15)" in text and "Seed flag" in text
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


def test_add_switch_spellings():
    parser = argparse.ArgumentParser()
    add_switch(parser, "--flag", "a switch")
    assert parser.parse_args([]).flag is False
    assert parser.parse_args(["--flag"]).flag is True
    assert parser.parse_args(["--flag", "True"]).flag is True
    assert parser.parse_args(["--flag", "no"]).flag is False


@pytest.mark.parametrize("command,argv", [
    ("export", ["--data_root_dir", "D", "--out", "t.json", "--absolute_paths"]),
    ("export", ["--data_root_dir", "D", "--out", "t.json", "--absolute_paths", "True"]),
    ("make-scene", ["--out", "o", "--overwrite"]),
    ("render", ["--run", "r", "--out", "o", "--no_video", "True"]),
])
def test_other_commands_switches(command, argv):
    args = vars(command_parser(command).parse_args(argv))
    assert True in args.values()
