"""`nerfw inspect` and `nerfw export` through the CLI."""
import json

import pytest

from nerfw.cli import main as nerfw_main
from nerfw.cli.inspect import main as inspect_main

from helpers import REALDATA as REAL


@pytest.fixture
def maup():
    p = REAL / "colmap_maupertuis_kapture"
    if not p.exists():
        pytest.skip("realdata absent")
    return p


def test_inspect_json(maup, capsys):
    assert inspect_main(["--data_root_dir", str(maup.parent), "--scene", maup.name, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "colmap" and out["splits"] == {"test": 1, "train": 3}
    cam = out["cameras"][0]
    assert {"name", "split", "width", "height", "fx", "fy", "cx", "cy", "T_world_cam", "near", "far"} <= set(cam)
    assert cam["name"] == "00.jpg" and len(cam["T_world_cam"]) == 4


def test_inspect_summary_and_downscale(maup, capsys):
    assert inspect_main(["--data_root_dir", str(maup), "--img_downscale", "2"]) == 0
    text = capsys.readouterr().out
    assert "format:  colmap" in text and "4 (test 1, train 3)" in text and "960x540" in text
    assert "fx 924.2" in text  # 1847.53 * 960 / 1919


def test_errors_are_one_line(tmp_path, capsys):
    assert nerfw_main(["inspect", "--data_root_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown dataset layout" in err and str(tmp_path) in err


def test_export_cli(maup, tmp_path, capsys):
    out = tmp_path / "t.json"
    assert nerfw_main(["export", "--data_root_dir", str(maup), "--format", "transforms", "--out", str(out)]) == 0
    meta = json.loads(out.read_text())
    assert len(meta["frames"]) == 4 and meta["test_filenames"] == [meta["frames"][0]["file_path"]]
    assert (tmp_path / meta["frames"][0]["file_path"]).resolve() == (maup / "images" / "00.jpg").resolve()
