"""Phototourism (NeRF-W): <scene>/dense/{images, sparse} COLMAP model + <scene>.tsv split file.

The tsv has the columns ``filename  id  split  dataset`` (tab-separated, header line). Its `id` may be
empty or NaN (as in the originals) and is not trusted: every row is mapped to the COLMAP image BY FILE
NAME. Only the images listed in the tsv are used (as NeRF-W does); rows naming no registered image are
dropped with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nerfw.data.parsers import colmap, common
from nerfw.data.scene import SceneData
from nerfw.errors import DatasetError


@dataclass
class TsvRow:
    filename: str
    id: int | None  # None when empty or NaN
    split: str  # "train" | "test" (lower-case)
    line: int


def _parse_id(token: str, path: Path, line: int) -> int | None:
    token = token.strip()
    if not token or token.lower() == "nan":
        return None
    value = common.parse_float(token, path, line, "image id")  # DatasetError for text and inf
    if value != int(value):
        raise DatasetError(path, f"expected an integer image id (or empty / NaN), got {token!r:.40}", line=line)
    return int(value)


def parse_tsv(path: Path) -> list[TsvRow]:
    """Rows of a NeRF-W split tsv (header 'filename id split dataset')."""
    lines = [(n, s) for n, s in common.read_lines(path) if s]
    if not lines or not lines[0][1].lower().startswith("filename"):
        raise DatasetError(path, "expected the header 'filename\\tid\\tsplit\\tdataset'", line=1)
    rows = []
    for n, s in lines[1:]:
        cols = s.split("\t")
        if len(cols) < 3 or not cols[0].strip():
            raise DatasetError(path, "expected 'filename<TAB>id<TAB>split<TAB>dataset'", line=n)
        split = cols[2].strip().lower()
        if split not in ("train", "test"):
            raise DatasetError(path, f"expected split 'train' or 'test', got {cols[2]!r:.20}", line=n)
        rows.append(TsvRow(cols[0].strip(), _parse_id(cols[1], path, n), split, n))
    if not rows:
        raise DatasetError(path, "expected at least one image row after the header", line=lines[0][0])
    return rows


def find_tsv(root: Path) -> Path | None:
    """<root>/<scene>.tsv, else the only .tsv in root."""
    own = root / f"{root.name}.tsv"
    if own.is_file():
        return own
    found = sorted(root.glob("*.tsv"))
    return found[0] if found else None


def load_phototourism(root: Path, img_downscale: float = 1) -> SceneData:
    root = Path(root)
    tsv = find_tsv(root)
    if tsv is None:
        raise DatasetError(root, "expected <scene>.tsv (NeRF-W split file) in the scene folder")
    model_dir = colmap.find_model_dir(root)
    if model_dir is None:
        raise DatasetError(root, "expected a COLMAP model in dense/sparse (cameras/images/points3D .bin)")
    model = colmap.read_model(model_dir)
    rows = parse_tsv(tsv)
    by_name = {im.name: im for im in model.images.values()}
    warnings: list[str] = []
    kept = [r for r in rows if r.filename in by_name]
    dropped = [r.filename for r in rows if r.filename not in by_name]
    if dropped:
        warnings.append(f"{tsv.name}: {len(dropped)} listed image(s) are not in the COLMAP model, dropped: "
                        + ", ".join(dropped[:5]) + (", ..." if len(dropped) > 5 else ""))
    mismatched = sum(1 for r in kept if r.id is not None and r.id != by_name[r.filename].id)
    if mismatched:
        warnings.append(f"{tsv.name}: {mismatched} id(s) differ from the COLMAP image id; matched by file name")
    if not kept:
        raise DatasetError(tsv, "expected rows naming images of the COLMAP model (none matched)")
    images = [by_name[r.filename] for r in kept]
    views = colmap.build_views(model, root, images, [r.split for r in kept], img_downscale, warnings)
    return SceneData(format="phototourism", root=root, cameras=views, points=model.points,
                     point_colors=model.colors, warnings=warnings)
