"""`nerfw view` start-up and time to the first image in a browser (docs/benchmarks.md).

    .venv/bin/python benchmarks/viewer_startup.py --run RUN [--repeats 3]

Per repeat, in a fresh process as a user runs it:

* start-up: from launching `nerfw view --run RUN` (a new Python process: imports, checkpoint, dataset, the
  viser server) until it prints its URL ("ready");
* the page: headless Chromium (benchmarks/headless_browser.py) opens the URL; "page loaded" is the browser's
  load event (document.readyState complete), measured from the navigation;
* first image: from the load event until a screenshot shows the model's rendering: more than 90 % of the
  image area left of the control panel differs from the empty page's background (frustums and points alone
  cover far less). Screenshots are polled about every 0.1-0.3 s (a screenshot takes that long with
  SwiftShader), so the figure is an upper bound by that much.

Then, in this process, the seconds of one 640x360 still frame (the viewer's RGB with the fast renderer; what
the page shows once the camera stops). Writes benchmarks/results/viewer_startup.json. Needs Chromium (Debian: apt-get install chromium).
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result  # noqa: E402
from headless_browser import HeadlessChromium  # noqa: E402

NERFW = Path(sys.executable).with_name("nerfw")
CROP = (slice(170, 540), slice(60, 600))  # left of viser's control panel, below its notification


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_once(run: str, width: int, timeout: float = 120.0) -> dict:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(NERFW), "view", "--run", run, "--port", str(port), "--width", str(width)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        ready_line = ""
        for line in proc.stdout:
            if "ready in" in line:
                ready_line = line.strip()
                break
        startup = time.perf_counter() - t0
        if not ready_line:
            raise RuntimeError(f"nerfw view exited without getting ready (code {proc.wait()})")
        internal = float(ready_line.split("ready in ")[1].split(" s")[0])
        with HeadlessChromium(width=960, height=600) as browser:
            blank = None
            t_nav = time.perf_counter()
            browser.navigate(f"http://127.0.0.1:{port}")  # returns at the load event
            t_load = time.perf_counter()
            while True:
                shot = browser.screenshot()[CROP].astype(np.int16)
                if blank is None:
                    blank = np.median(shot.reshape(-1, 3), axis=0)  # the empty page's background colour
                covered = float((np.abs(shot - blank).max(axis=-1) > 12).mean())
                if covered > 0.9:
                    break
                if time.perf_counter() - t_load > timeout:
                    raise RuntimeError(f"no rendered image after {timeout:.0f} s ({covered:.0%} covered)")
            t_first = time.perf_counter()
        return {"startup_s": startup, "startup_in_process_s": internal, "page_load_s": t_load - t_nav,
                "first_image_after_load_s": t_first - t_load, "first_image_after_navigation_s": t_first - t_nav}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def frame_seconds(run_dir: str, width: int = 640, height: int = 360, repeats: int = 3) -> float:
    """Median seconds of one still frame (the viewer's RGB, fast renderer) at width x height, in this process,
    after a warm-up frame (the baked proposal volume)."""
    import math

    from nerfw.viewer.server import load_viewer_run, render_image, vertical_fov, view_camera

    import torch

    from nerfw.evaluation.evaluate import cpu_threads

    torch.set_num_threads(cpu_threads())  # as `nerfw view` does on a CPU
    run = load_viewer_run(run_dir)
    cam = run.scene.split("train")[0]
    T = run.normalization.pose_to_model(cam.T_world_cam)
    near, far = cam.near * run.normalization.scale, cam.far * run.normalization.scale
    view = view_camera(T, vertical_fov(cam), width / height, width, near, far)
    app = run.model.appearance_vector(mean=True)
    render_image(run.model, view_camera(T, vertical_fov(cam), width / height, 32, near, far), "RGB", app, None)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        render_image(run.model, view, "RGB", app, None)
        times.append(time.perf_counter() - t0)
    assert not math.isnan(times[0])
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes measured")
    parser.add_argument("--width", type=int, default=640, help="the viewer's still-image width")
    args = parser.parse_args(argv)
    rows = []
    for k in range(args.repeats):
        rows.append(measure_once(args.run, args.width))
        print(f"[{k + 1}/{args.repeats}] " + ", ".join(f"{key} {v:.2f}" for key, v in rows[-1].items()), flush=True)
    figures = {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
    figures.update({f"{key}_max": float(np.max([r[key] for r in rows])) for key in rows[0]})
    figures["still_frame_640x360_s"] = frame_seconds(args.run)
    print(f"still frame 640x360 (fast renderer): {figures['still_frame_640x360_s']:.2f} s")
    path = write_result("viewer_startup", figures, {"run": args.run, "repeats": args.repeats, "width": args.width},
                        ["medians over fresh `nerfw view` processes; first image = > 90 % of the view covered by "
                         "the rendering in a headless Chromium screenshot (SwiftShader WebGL)"])
    print("median: " + ", ".join(f"{key} {figures[key]:.2f} s" for key in rows[0]) + f" -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
