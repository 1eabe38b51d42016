"""`nerfw view` in a real browser: headless Chromium loads the page, the screenshot shows the rendered scene,
and moving the browser's camera (server-side, through viser's client camera API) changes what it shows.

Skipped when Chromium is not installed (`make test` installs Debian's `chromium` where it can)."""
from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import BENCHMARKS  # noqa: E402

sys.path.insert(0, str(BENCHMARKS))

from headless_browser import HeadlessChromium, chromium_binary  # noqa: E402

pytestmark = [pytest.mark.e2e,  # a real browser on a model's renders
              pytest.mark.skipif(chromium_binary() is None,
                                 reason="no Chromium browser (/usr/bin/chromium); install it with "
                                        "`apt-get install chromium` to run the browser test")]

VIEWPORT = (960, 600)  # width, height
# The part of the page that only the rendered background covers: left of the control panel, below the
# notification viser shows about software WebGL, above the axes gizmo.
CROP = (slice(170, 540), slice(60, 600))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def full_frame(viewer, after: int):
    """The first client's newest full-resolution frame once it has rendered more than ``after`` frames."""
    views = list(viewer.clients.values())
    if not views:
        return None
    view = views[0]
    frame = view.last_frame
    if frame is None or view.frames <= after or frame.preview or view.refined_version != view.version:
        return None
    return view, frame


def as_shown(frame_image: np.ndarray) -> np.ndarray:
    """A rendered frame stretched to the page, as the browser draws the background image."""
    from PIL import Image

    return np.asarray(Image.fromarray(frame_image).resize(VIEWPORT, Image.BILINEAR)).astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-9))


def screenshot_showing(browser, frame_image: np.ndarray, save: Path, timeout: float = 30.0) -> np.ndarray:
    """A screenshot once the page shows ``frame_image`` (the browser decodes and draws it asynchronously);
    the last screenshot and the frame are saved as ``save`` and ``save``-frame.png for a look."""
    from PIL import Image

    expected = as_shown(frame_image)[CROP]
    shot = None

    def shows():
        nonlocal shot
        shot = browser.screenshot()
        return correlation(shot[CROP], expected) > 0.8

    try:
        wait_for(shows, timeout, "the rendered frame on the page")
    except AssertionError:
        Image.fromarray(shot).save(save)
        Image.fromarray(frame_image).save(save.with_name(save.stem + "-frame.png"))
        raise AssertionError(f"the page does not show the rendered frame (correlation "
                             f"{correlation(shot[CROP], expected):.2f})") from None
    return shot


@pytest.mark.slow
def test_viewer_shows_the_model_and_follows_the_camera(tiny_run, tmp_path):
    from nerfw.viewer.server import Viewer, load_viewer_run

    run = load_viewer_run(tiny_run)
    viewer = Viewer(run, port=free_port(), width=240, log=lambda m: None)
    url = viewer.start()
    try:
        with HeadlessChromium(width=VIEWPORT[0], height=VIEWPORT[1]) as browser:
            browser.navigate(url)
            _, first = wait_for(lambda: full_frame(viewer, 0), 60, "the first full-resolution frame")
            shot1 = screenshot_showing(browser, first.image, tmp_path / "viewer_1.png")
            region = shot1[CROP].astype(np.float64)
            assert region.std() > 8, f"the page shows a near-uniform image (std {region.std():.1f})"
            assert len(np.unique(region.reshape(-1, 3) // 16, axis=0)) > 20, "too few colours: not a rendering"

            # Move the browser's camera to another training camera, from the server (viser's camera API, as a
            # click on its frustum does); the browser reports the new camera back and gets a new frame.
            view = next(iter(viewer.clients.values()))
            # Neighbouring cameras' frustums (with their photographs) and the sparse points would cover parts
            # of the new view: switch them off with the page's controls.
            viewer._gui["cameras"].value = False
            viewer._gui["points"].value = False
            frames_before = view.frames
            k = len(viewer._cameras) // 2
            target = viewer._cameras[k]
            viewer.look_through(view.client, k)
            _, second = wait_for(lambda: full_frame(viewer, frames_before), 60, "a frame of the moved camera")
            shot2 = screenshot_showing(browser, second.image, tmp_path / "viewer_2.png")
            change = np.abs(shot2[CROP].astype(np.float64) - region).mean()
            assert change > 8, f"moving the camera hardly changed the page (mean change {change:.1f} / 255)"
            assert np.allclose(view.client.camera.position, target[1][:3, 3], atol=1e-3)
    finally:
        viewer.stop()


@pytest.mark.slow
def test_train_viewer_shows_the_newest_weights(tiny_cambridge, tmp_path, monkeypatch):
    """`nerfw train --viewer`: the page renders while training and again when the trainer hands over weights."""
    import threading

    import nerfw.viewer.server as viewer_module
    from helpers import train_argv
    from nerfw.training.config import parse_config
    from nerfw.training.trainer import train

    # New weights at the command's own interval (LIVE_UPDATE_S, 5 s). Shorter intervals were tried to speed the
    # test up: 0.5 s never let a full frame finish on a loaded 2-core VM (the full suite), and 2 s once
    # timed out at 240 s beside the localization tests' photometric renders.
    live = []
    start = viewer_module.LiveViewer.start
    monkeypatch.setattr(viewer_module.LiveViewer, "start", lambda self, *a: (live.append(self), start(self, *a))[1])
    port = free_port()
    cfg = parse_config(train_argv(tiny_cambridge, tmp_path, "live", "--max_steps", "100000", "--max_minutes", "6", "--viewer",
                                  "--viewer_port", str(port)))
    finished = []
    trainer = threading.Thread(target=lambda: finished.append(train(cfg, viewer_module.LiveViewer)), daemon=True)
    trainer.start()
    try:
        wait_for(lambda: live and live[0].viewer.server is not None, 120, "the viewer of the training run")
        viewer = live[0].viewer
        with HeadlessChromium(width=VIEWPORT[0], height=VIEWPORT[1]) as browser:
            browser.navigate(f"http://127.0.0.1:{port}")
            wait_for(lambda: viewer.clients and next(iter(viewer.clients.values())).last_full_frame is not None,
                     240, "a full frame of the training model")
            view = next(iter(viewer.clients.values()))
            step_shown, frames_before = viewer.run.step, view.frames
            # no camera movement: new frames come from new weights alone
            # A full frame of weights newer than those shown. (Not "the newest frame is full and current": on a
            # loaded machine a full frame outlasts the 5 s update interval, and the update waiting for it to finish
            # makes it stale at once.)
            wait_for(lambda: (f := view.last_full_frame) is not None and f.step > step_shown
                     and view.frames > frames_before, 240, "a full frame of newer weights")
            assert "weights of step" in viewer._gui["info"].content
            assert trainer.is_alive() or finished, "training stopped early"
    finally:
        # End the run now that the page has been checked (the 6-minute budget only leaves room for a machine busy
        # with other tests): the trainer compares its clock with --max_minutes at every step.
        import types

        import nerfw.training.trainer as trainer_module

        monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(time=lambda: time.time() + 3600.0))
        trainer.join(600)
    assert finished and not trainer.is_alive()
