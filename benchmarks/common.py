"""Shared pieces of the benchmark scripts: the machine, the built-in scene, devices, results, child processes.

Every script writes ``benchmarks/results/<name>.json`` holding its figures, the machine it ran on (CPU model,
cores, RAM, torch, GPUs) and the load average when it started, so a number is never separated from where
and how it was measured. Scenes, runs and caches go to ``benchmarks/.cache/`` (git-ignored), or to
``$NERFW_BENCH_DIR`` when set.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Real public data: ../shared/realdata beside the repository, or NERFW_REALDATA (as the tests find it).
REALDATA = Path(os.environ.get("NERFW_REALDATA", REPO.parent / "shared" / "realdata"))
if str(REPO) not in sys.path:  # `python benchmarks/x.py` from anywhere imports this checkout's nerfw
    sys.path.insert(0, str(REPO))

RESULTS_DIR = REPO / "benchmarks" / "results"
_LOAD_AT_START = os.getloadavg()  # other processes' load when the benchmark started (1, 5, 15 min)
DEMO_SCENE = "SynthSquare"  # the built-in demo scene (nerfw demo uses the same name and seed)
DEMO_DOWNSCALE = 3  # the demo trains at --img_downscale 3 (160x90 from the generator's 480x270)


def work_dir() -> Path:
    """Where benchmark scenes, runs and caches go (git-ignored)."""
    path = Path(os.environ.get("NERFW_BENCH_DIR", REPO / "benchmarks" / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine() -> dict:
    """A description of this machine, stored beside every figure."""
    import torch

    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(), "cores": cores, "ram_gb": _ram_gb(), "gpus": gpus,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
        "os": platform.platform(), "hostname": platform.node(),
        "load_average_at_start": [round(x, 2) for x in _LOAD_AT_START],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def machine_line(m: dict) -> str:
    gpu = ", ".join(m["gpus"]) if m["gpus"] else "no GPU"
    return (f"{m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {gpu}, torch {m['torch']}, "
            f"load average {m['load_average_at_start'][0]} at start, {m.get('load_average_at_end', ['?'])[0]} at end")


def devices() -> list[str]:
    """Devices to measure on: the CPU always, CUDA as well when present."""
    import torch

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sync(device: str) -> None:
    """Wait for queued GPU work so wall-clock timings are honest."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- results
def write_result(name: str, figures: dict, settings: dict | None = None, notes: list[str] | None = None,
                 started: float | None = None) -> Path:
    """Write benchmarks/results/<name>.json: figures + settings + notes + machine + date + command."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "wall_seconds": None if started is None else round(time.time() - started, 1),
        "machine": machine(),
        "settings": settings or {},
        "figures": figures,
        "notes": notes or [],
    }
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    tmp.replace(path)
    return path


def _json_default(value):
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_result(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def log(message: str) -> None:
    print(message, flush=True)


# ----------------------------------------------------------------------------- the built-in scene
def ensure_scene(scene: str = DEMO_SCENE, seed: int = 0, root: Path | None = None, layout: str = "cambridge",
                 **generator_kwargs) -> Path:
    """Generate the built-in scene of `layout` once (cached by a marker file) and return its data root.

    generator_kwargs (width, height, n_train, n_test) go to nerfw.synthetic.generate_scene; a scene with
    non-default arguments gets its own name suffix so cached scenes never mix.
    """
    from nerfw.synthetic import generate_scene

    root = Path(root or work_dir() / "data")
    marker = root / f".{scene}.seed{seed}.done"
    if marker.is_file():
        return root
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    generate_scene(root, layout=layout, scene=scene, seed=seed, **generator_kwargs)
    marker.write_text(json.dumps({"seed": seed, **generator_kwargs}) + "\n")
    log(f"generated the built-in scene {root / scene} in {time.time() - t0:.0f} s")
    return root


def scene_name(n_train: int | None = None, width: int | None = None, n_test: int | None = None) -> str:
    """Name of a built-in scene variant, e.g. SynthSquare_w480_n64 (the plain name for the defaults)."""
    parts = [DEMO_SCENE]
    if width:
        parts.append(f"w{width}")
    if n_train:
        parts.append(f"n{n_train}")
    if n_test is not None:
        parts.append(f"t{n_test}")
    return "_".join(parts)


def train_argv(data_root: Path, scene: str, run_root: Path, exp_name: str, field: str, *extra: str,
               img_downscale: int = DEMO_DOWNSCALE, seed: int = 0) -> list[str]:
    """Command-line options of `nerfw train` for a benchmark run (no previews, plain log lines)."""
    return ["--data_root_dir", str(data_root), "--scene", scene, "--root_dir", str(run_root),
            "--exp_name", exp_name, "--field", field, "--img_downscale", str(img_downscale), "--seed", str(seed),
            "--val_freq", "100000000", "--progress", "log", *extra]


# ----------------------------------------------------------------------------- processes and memory
def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM), in MB (1e6 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # kB on Linux


def current_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return float("nan")


RESULT_PREFIX = "BENCH_RESULT "


def emit_child_result(result: dict) -> None:
    """Print a child process's result as one marked JSON line for run_child()."""
    print(RESULT_PREFIX + json.dumps(result, default=_json_default), flush=True)


def run_child(script: Path, args: list[str], timeout: float = 900, env: dict | None = None) -> dict:
    """Run `python script args` in a fresh process and return the dict it emitted with emit_child_result."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=str(REPO))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"child {script.name} {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])


# ----------------------------------------------------------------------------- tables
def format_table(rows: list[list[str]], header: list[str]) -> str:
    """A plain fixed-width text table."""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.{digits}f}"
    return str(value)
