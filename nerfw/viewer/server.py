"""`nerfw view`: look at a trained run in a web browser (viser), flying the camera with the mouse.

    nerfw view --run runs/nerf/exp            # then open http://127.0.0.1:7007
    ssh -L 7007:localhost:7007 HOST           # from a laptop, for a run on a remote machine

The page shows the model rendered from the browser's camera, the dataset's cameras as frustums with their
photographs (click one to look through it; train red, test blue, synthesized LENS views from --views green)
and the dataset's sparse points. Controls on the right: the output (RGB, static, transient, depth, beta),
the appearance (a training image's embedding, or a blend of two), and the resolution.

Rendering: while the camera moves, frames are rendered at a low resolution sized to take about 0.12 s
(PREVIEW_BUDGET_S); once the camera has been still for 0.25 s (STILL_DELAY_S) the frame is rendered again at
the full resolution (a full render is abandoned as soon as the camera moves again). RGB with the mean or a blended
appearance, static and depth use the fast renderer (nerfw/model/fast_render.py: static scene, grid field);
transient, beta, and RGB with a training image's appearance (its transient objects included) use the renderer
as trained.

Frames: everything is shown in the run's model frame (nerfw.data.scene.Normalization: the dataset frame
shifted and scaled so the scene's content ball is the unit ball; the axes stay the dataset's), whose camera
axes are OpenCV's, as viser's.
"""
from __future__ import annotations

import contextlib
import io
import math
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nerfw.data.poses_file import read_poses_file
from nerfw.data.scene import CameraView, Normalization
from nerfw.data.vertex_ply import read_vertices
from nerfw.errors import ConfigError, NerfwError
from nerfw.model.nerfw_model import RenderOutput, build_model
from nerfw.model.view_rendering import camera_rays_model, colorize
from nerfw.training.run_io import Run, load_run

OUTPUTS = ("RGB", "static", "transient", "depth", "beta")
MEAN = "mean of all images"
NO_BLEND = "(none)"
PREVIEW_BUDGET_S = 0.12  # target time of a low-resolution frame while the camera moves
STILL_DELAY_S = 0.25  # the camera has been still this long: render at the full resolution
MIN_PREVIEW_WIDTH = 48
THUMBNAIL_SIDE = 96  # longest side of the frustums' photographs, pixels
MAX_POINTS = 50_000  # sparse points shown (a random subset beyond this)
SPLIT_COLOURS = {"train": (220, 40, 40), "test": (40, 90, 230), "synth": (30, 170, 60)}
IDENTITY = Normalization(np.zeros(3), 1.0)


# ----------------------------------------------------------------------------- cameras and rendering
def rotation_to_wxyz(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation matrix."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    return np.array([w, x, y, z])


def wxyz_to_rotation(wxyz) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    w, x, y, z = np.asarray(wxyz, dtype=np.float64)
    return Rotation.from_quat([x, y, z, w]).as_matrix()


def ball_segments(n: int = 96) -> np.ndarray:
    """The unit ball of the model frame (the framed content ball, the grid's finest region) as three great circles,
    line segments [3 * n, 2, 3]."""
    t = np.linspace(0.0, 2.0 * np.pi, n + 1)
    circle = np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], axis=1)  # in the xy plane
    loops = [circle, circle[:, [2, 0, 1]], circle[:, [1, 2, 0]]]  # xy, zx (x -> z), yz
    return np.concatenate([np.stack([loop[:-1], loop[1:]], axis=1) for loop in loops])


BALL_COLOUR = (250, 170, 40)


def read_cloud(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The vertices (dataset frame) and colours of a point cloud or mesh PLY (`nerfw export --run`)."""

    if not path.is_file():
        raise NerfwError(f"--cloud {path}: no such file")
    try:
        return read_vertices(path)
    except Exception as exc:  # plyfile raises several types for damaged files
        raise NerfwError(f"--cloud {path}: expected a PLY with x, y, z vertices ({type(exc).__name__}: {exc})") from None


def vertical_fov(camera: CameraView) -> float:
    """Vertical field of view of a dataset camera, radians."""
    return 2.0 * math.atan(0.5 * camera.height / camera.fy)


def view_camera(T_model_cam: np.ndarray, fov_y: float, aspect: float, width: int, near: float,
                far: float) -> CameraView:
    """A pinhole camera (model frame, square pixels, centred principal point) of the browser's view."""
    width = max(1, int(width))
    height = max(1, int(round(width / max(aspect, 1e-6))))
    fy = 0.5 * height / math.tan(0.5 * fov_y)
    return CameraView("viewer", Path("viewer.png"), "render", width, height, fy, fy, 0.5 * width, 0.5 * height,
                      np.asarray(T_model_cam, dtype=np.float64), near, far)


def uses_full_renderer(output: str, with_image_transients: bool) -> bool:
    """Whether an output needs the renderer as trained (transient head on) rather than the fast one."""
    return output in ("transient", "beta") or (output == "RGB" and with_image_transients)


@torch.no_grad()
def render_image(model, camera: CameraView, output: str, appearance: torch.Tensor | None, image_id: int | None,
                 chunk: int = 16384, abort=None) -> np.ndarray | None:
    """One output of the model at a model-frame camera as uint8 [H, W, 3]; None when ``abort()`` became true
    between chunks. image_id: a training image whose transient embedding RGB uses (None: the static scene)."""

    if output not in OUTPUTS:
        raise ConfigError(f"unknown output '{output}' (choose from {', '.join(OUTPUTS)})")
    device = next(model.parameters()).device
    with_transients = image_id is not None and bool(model.cfg.encode_t)
    use_transient = uses_full_renderer(output, with_transients) and bool(model.cfg.encode_t)
    o, d, near, far = camera_rays_model(camera, IDENTITY, device, distortion=False)
    ids = torch.full((len(o),), int(image_id or 0), dtype=torch.long, device=device)
    if appearance is not None:
        appearance = appearance.to(device)
    outs = []
    for i in range(0, len(o), chunk):
        if abort is not None and abort():
            return None
        sl = slice(i, i + chunk)
        outs.append(model.render_chunked(o[sl], d[sl], near[sl], far[sl], ids[sl], chunk=chunk,
                                         appearance=appearance, use_transient=use_transient, perturb=False,
                                         fast=not use_transient))
    out = RenderOutput.cat(outs)
    H, W = camera.height, camera.width
    if output in ("RGB", "static", "transient"):
        rgb = {"RGB": out.rgb, "static": out.rgb_static, "transient": out.rgb_transient}[output]
        img = rgb.float().reshape(H, W, 3).cpu().numpy()
    elif output == "depth":
        img = colorize(out.depth_median.float().reshape(H, W).cpu().numpy())
    else:
        img = colorize(out.beta.float().reshape(H, W).cpu().numpy())
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def check_port(host: str, port: int) -> None:
    """A one-line error when ``host:port`` cannot be bound (busy port, unknown host, no permission)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does (TIME_WAIT is fine)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux / macOS / Windows
                raise NerfwError(f"port {port} on {host} is busy (another viewer?); choose another with --port")
            raise NerfwError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def load_viewer_run(run_dir: str | Path, device: str = "cpu"):
    """The run to view, with one-line errors for a missing folder, a folder that is no run, no checkpoint."""

    path = Path(run_dir)
    if not path.exists():
        raise NerfwError(f"{path}: no such run folder")
    if not path.is_dir():
        raise NerfwError(f"{path}: not a folder (give a run folder, <root_dir>/<exp_name>)")
    if not (path / "checkpoints").is_dir() and (path / "config.json").is_file():
        raise NerfwError(f"{path}: the run has no checkpoint yet (training saves one every --save_latest_freq "
                         "steps and at the end)")
    return load_run(path, device=device)


def thumbnail(path: Path, side: int = THUMBNAIL_SIDE) -> np.ndarray | None:
    """A small RGB copy of an image file (None when it cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.draft("RGB", (side, side))  # JPEG: decode at a reduced size
            im = im.convert("RGB")
            im.thumbnail((side, side))
            return np.asarray(im)
    except (OSError, ValueError):
        return None


# ----------------------------------------------------------------------------- the viewer
@dataclass
class Frame:
    """What the browser shows: one rendered image and how it was made."""

    image: np.ndarray
    width: int
    height: int
    seconds: float
    preview: bool
    time: float
    step: int = 0  # the training step of the weights it shows


class ClientView:
    """One browser tab: a render thread that follows its camera and the GUI settings."""

    def __init__(self, viewer: "Viewer", client):
        self.viewer, self.client = viewer, client
        self.version = 0  # bumped by every camera or setting change
        self.moved_at = time.time()
        self.rendered_version = -1
        self.refined_version = -1
        self.last_frame: Frame | None = None
        self.last_full_frame: Frame | None = None  # the newest full-resolution frame
        self.frames = 0
        # this tab's scene objects, added after its first frame (so that frame is not held up by the browser
        # building dozens of frustums and thousands of points in software WebGL)
        self.frustums: list = []
        self.points = None
        self.ball = None  # the framed ball's circles
        self.scene_added = False
        self.inside: int | None = 0  # the camera it looks through (its frustum would cover the view); first: 0
        self.arrived = False  # whether the browser's camera has reported the position of camera `inside`
        self._event = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=f"nerfw-view-{client.client_id}", daemon=True)
        self._thread.start()

    def changed(self, moved: bool = True) -> None:
        if moved:
            self.moved_at = time.time()
        self.version += 1
        self._event.set()

    def stop(self) -> None:
        self._stop = True
        self._event.set()

    def _loop(self) -> None:
        while not self._stop:
            self._event.wait(0.05)
            self._event.clear()
            version = self.version
            try:
                if version != self.rendered_version:
                    self._render(version, preview=True)
                elif self.refined_version != version and time.time() - self.moved_at >= STILL_DELAY_S:
                    self._render(version, preview=False)
            except Exception as exc:  # a render error must not kill the tab's thread
                self.viewer.log(f"viewer: render failed: {type(exc).__name__}: {exc}")
                self.rendered_version = self.refined_version = version

    def _render(self, version: int, preview: bool) -> None:
        viewer, cam = self.viewer, self.client.camera
        try:
            wxyz, position, fov, aspect = cam.wxyz, cam.position, cam.fov, cam.aspect
        except AssertionError:  # no camera message from the browser yet
            return
        if not (np.all(np.isfinite(wxyz)) and np.all(np.isfinite(position)) and fov > 0 and aspect > 0):
            return
        settings = viewer.settings()
        full_width = settings["width"]
        key = settings["renderer"]
        width = full_width
        if preview:
            per_pixel = viewer.seconds_per_pixel.get(key)
            if per_pixel is not None:
                width = int(math.sqrt(PREVIEW_BUDGET_S / per_pixel * aspect))
            else:
                width = min(full_width, 160)
            width = max(MIN_PREVIEW_WIDTH, min(width, full_width))
        T = np.eye(4)
        T[:3, :3] = wxyz_to_rotation(wxyz)
        T[:3, 3] = position
        camera = view_camera(T, fov, aspect, width, viewer.near, viewer.far)
        t0 = time.perf_counter()
        with viewer.render_lock:
            step = viewer.run.step
            image = render_image(viewer.run.model, camera, settings["output"], settings["appearance"],
                                 settings["image_id"], viewer.chunk,
                                 abort=None if preview else (lambda: self.version != version or self._stop))
        seconds = time.perf_counter() - t0
        if image is None:  # abandoned: the camera moved
            return
        pixels = camera.width * camera.height
        old = viewer.seconds_per_pixel.get(key)
        viewer.seconds_per_pixel[key] = seconds / pixels if old is None else 0.5 * old + 0.5 * seconds / pixels
        self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=70 if preview else 90)
        self.client.flush()
        self.last_frame = Frame(image, camera.width, camera.height, seconds, preview and width < full_width,
                                time.time(), step)
        if not self.last_frame.preview:
            self.last_full_frame = self.last_frame
        self.frames += 1
        self.rendered_version = version
        if not preview or width >= full_width:
            self.refined_version = version
        viewer.frame_rendered(self)
        if not self.scene_added and self.refined_version == version:  # after the first full-resolution frame
            self.scene_added = True
            viewer.add_client_scene(self)


class Viewer:
    """A viser server showing one run. ``start()`` returns the URL; ``stop()`` ends it."""

    def __init__(self, run, host: str = "127.0.0.1", port: int = 7007, views: str | Path | None = None,
                 width: int | None = None, chunk: int = 16384, log=print, cloud: str | Path | None = None):
        self.run, self.host, self.port, self.chunk, self.log = run, host, port, chunk, log
        self.views_path = Path(views) if views else None
        self.cloud_path = Path(cloud) if cloud else None
        device = next(run.model.parameters()).device
        self.default_width = width or (1280 if device.type == "cuda" else 640)
        self.seconds_per_pixel: dict[str, float] = {}
        self.render_lock = threading.Lock()
        self.clients: dict[int, ClientView] = {}
        self.server = None
        self.first_frame_at: float | None = None
        self.first_full_frame_at: float | None = None
        self.started_at: float | None = None
        self.warm_at: float | None = None
        self.training: tuple[int, float | None] | None = None  # (step, train PSNR) under `nerfw train --viewer`
        self._gui: dict = {}
        self._cameras: list[tuple[CameraView, np.ndarray]] = []  # (camera, T_model_cam)

    # -------------------------------------------------------------- set-up
    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> str:
        import viser

        check_port(self.host, self.port)
        self._prepare_scene()
        self.started_at = time.time()
        with contextlib.redirect_stdout(io.StringIO()):  # viser's own banner; `nerfw view` prints the URL
            server = viser.ViserServer(host=self.host, port=self.port, label=f"nerfw: {self.run.run_dir.name}",
                                       verbose=False)
        if server.get_port() != self.port:  # viser moves on to the next free port; we promised this one
            with contextlib.redirect_stdout(io.StringIO()):
                server.stop()
            raise NerfwError(f"port {self.port} on {self.host} is busy (another viewer?); choose another with --port")
        self.server = server
        server.gui.configure_theme(show_share_button=False)  # sharing needs viser's servers on the internet
        self._add_gui()
        self._add_scene()
        server.on_client_connect(self._connect)
        server.on_client_disconnect(self._disconnect)
        threading.Thread(target=self._warm_up, name="nerfw-view-warm-up", daemon=True).start()
        return self.url

    def _warm_up(self) -> None:
        """While the browser loads the page: bake the fast renderer's proposal volume (seconds on a CPU, once)
        and render one tiny frame, so the first frame a browser asks for comes at the speed of every later one;
        then read the photographs of the frustums (after the first frame, or after 10 s without a browser)."""
        try:
            with self.render_lock:
                model = self.run.model
                if model.supports_fast_render(use_transient=False):
                    model.fast_renderer().baked()
                cam, T = self._cameras[0]
                app = model.appearance_vector(mean=True)
                for width in (32, 96):  # the second one times a frame: it sizes the first preview
                    small = view_camera(T, vertical_fov(cam), cam.width / cam.height, width, self.near, self.far)
                    t0 = time.perf_counter()
                    render_image(model, small, "RGB", app, None, self.chunk)
                self.seconds_per_pixel.setdefault("fast", (time.perf_counter() - t0) / (small.width * small.height))
            self.warm_at = time.time()
        except Exception as exc:  # not fatal: the first frame will do the same work
            self.log(f"viewer: warm-up failed: {type(exc).__name__}: {exc}")
        deadline = time.time() + 10
        while self.first_full_frame_at is None and time.time() < deadline and self.server is not None:
            time.sleep(0.1)
        self._add_thumbnails()

    def stop(self) -> None:
        for view in list(self.clients.values()):
            view.stop()
        if self.server is not None:
            with contextlib.redirect_stdout(io.StringIO()):
                self.server.stop()
            self.server = None

    def _prepare_scene(self) -> None:
        run, norm = self.run, self.run.normalization
        scene = run.scene
        cams = [c for c in scene.cameras if c.split in ("train", "test")] or list(scene.cameras)
        if self.views_path is not None:

            if not self.views_path.is_file():
                raise NerfwError(f"--views {self.views_path}: no such poses file")
            cams += read_poses_file(self.views_path, scene.split("train")[0], split="synth")
        self._cameras = [(c, norm.pose_to_model(c.T_world_cam)) for c in cams]
        train = [(c, T) for c, T in self._cameras if c.split == "train"] or self._cameras
        self.near = float(min(c.near for c, _ in train) * norm.scale)
        self.far = float(max(c.far for c, _ in train) * norm.scale)
        if np.allclose(norm.rotation, np.eye(3)):  # the dataset's axes (--orient none, older runs)
            up = -np.stack([T[:3, 1] for _, T in train]).mean(0)  # OpenCV cameras: image up is -y
        else:  # the model frame is turned to z-up (nerfw.data.orientation)
            up = np.array([0.0, 0.0, 1.0])
        self.up = up / max(np.linalg.norm(up), 1e-9)
        centres = np.stack([T[:3, 3] for _, T in self._cameras])
        if len(centres) > 1:
            from scipy.spatial import cKDTree

            nn = cKDTree(centres).query(centres, k=2)[0][:, 1]
            spacing = float(np.median(nn[nn > 0])) if np.any(nn > 0) else 0.1
        else:
            spacing = 0.1
        self.frustum_scale = float(np.clip(0.6 * spacing, 0.02, 0.3))
        self.train_names = [c.name for c, _ in train]
        self.points = None
        points, colors = (read_cloud(self.cloud_path) if self.cloud_path is not None
                          else (scene.points, scene.point_colors))
        if points is not None and len(points):
            pts = norm.points_to_model(points)
            cols = colors if colors is not None else np.full((len(pts), 3), 200, np.uint8)
            if len(pts) > MAX_POINTS:
                keep = np.random.default_rng(0).choice(len(pts), MAX_POINTS, replace=False)
                pts, cols = pts[keep], cols[keep]
            self.points = (pts.astype(np.float32), np.asarray(cols, dtype=np.uint8))

    def _add_gui(self) -> None:
        gui = self.server.gui
        run = self.run
        g = self._gui
        g["info"] = gui.add_markdown(self.info_text())
        g["output"] = gui.add_dropdown("Output", OUTPUTS, initial_value="RGB",
                                       hint="RGB: the model's image; static: the static scene only; transient: "
                                            "the transient objects of the appearance image; depth: median "
                                            "depth; beta: NeRF-W's per-pixel uncertainty")
        options = [MEAN] + self.train_names
        g["appearance"] = gui.add_dropdown("Appearance", options, initial_value=MEAN,
                                           hint="whose lighting and exposure: a training image's embedding "
                                                "(RGB then also shows that image's transient objects) or the mean")
        g["blend_to"] = gui.add_dropdown("Blend to", [NO_BLEND] + self.train_names, initial_value=NO_BLEND,
                                         hint="a second training image; the slider mixes the two embeddings")
        g["blend"] = gui.add_slider("Blend", 0.0, 1.0, 0.05, 0.0, hint="0: the first appearance, 1: the second")
        g["width"] = gui.add_slider("Resolution (px wide)", 64, 2048, 16, int(self.default_width),
                                    hint="width of the still image; while the camera moves a smaller image is "
                                         "rendered, sized to keep the view fluid")
        g["cameras"] = gui.add_checkbox("Show cameras", True, hint="the dataset's cameras as frustums (click one "
                                                                   "to look through it)")
        g["photos"] = gui.add_checkbox("Camera photos", True, hint="each frustum shows its photograph")
        g["points"] = gui.add_checkbox("Show points", self.points is not None, disabled=self.points is None,
                                       hint="the dataset's sparse 3-D points")
        g["ball"] = gui.add_checkbox("Show framing", True, hint="the framed ball (orange): the region the grid "
                                                                "resolves finest; beyond it space is contracted "
                                                                "(see `nerfw inspect` for its size in cells)")
        g["status"] = gui.add_markdown("waiting for the browser's camera ...")
        reset = gui.add_button("Reset view", hint="back to the first training camera")

        @reset.on_click
        def _(event) -> None:
            if event.client is not None:
                self.look_through(event.client, 0)

        for name in ("output", "appearance", "blend_to", "blend", "width"):
            g[name].on_update(lambda _event: self._settings_changed())
        g["cameras"].on_update(lambda _event: self._show_cameras())
        g["photos"].on_update(lambda _event: self._show_photos())
        g["points"].on_update(lambda _event: self._show_points())
        g["ball"].on_update(lambda _event: self._show_ball())

    def info_text(self) -> str:
        run = self.run
        text = f"**Run** `{run.run_dir}`  \nstep {run.step} · {len(run.image_names)} images · field {run.cfg.model.field}"
        if self.training is not None:
            step, psnr = self.training
            text += "  \n**training**: weights of step " + str(step) + (
                f" · train PSNR {psnr:.2f} dB" if psnr is not None else "")
        return text

    def refresh_info(self) -> None:
        if "info" in self._gui:
            self._gui["info"].content = self.info_text()

    def _add_scene(self) -> None:
        scene = self.server.scene
        scene.set_up_direction(tuple(float(v) for v in self.up))
        first_cam, T0 = self._cameras[0]
        look = T0[:3, 3] + T0[:3, 2] * max(float(np.linalg.norm(T0[:3, 3])), 0.5)
        self.server.initial_camera.position = tuple(T0[:3, 3])
        self.server.initial_camera.look_at = tuple(look)
        self.server.initial_camera.up = tuple(self.up)
        self.server.initial_camera.fov = vertical_fov(first_cam)
        self._thumbnails: dict[int, np.ndarray] = {}
        self._thumbnails_done = threading.Event()

    def add_client_scene(self, view: "ClientView") -> None:
        """A tab's points and camera frustums (with their photographs once read); after its first frame."""
        scene, g = view.client.scene, self._gui
        with view.client.atomic():
            if self.points is not None:
                view.points = scene.add_point_cloud("/points", self.points[0], self.points[1],
                                                    point_size=0.06 * self.frustum_scale, point_shape="rounded",
                                                    visible=bool(g["points"].value))
            view.ball = scene.add_line_segments("/framing", ball_segments(), BALL_COLOUR,
                                                thickness=0.02 * self.frustum_scale, visible=bool(g["ball"].value))
            for k, (cam, T) in enumerate(self._cameras):
                handle = scene.add_camera_frustum(
                    f"/cameras/{cam.split}/{k:05d}", fov=vertical_fov(cam), aspect=cam.width / cam.height,
                    scale=self.frustum_scale, color=SPLIT_COLOURS.get(cam.split, (150, 150, 150)),
                    wxyz=rotation_to_wxyz(T[:3, :3]), position=T[:3, 3], thickness=0.04 * self.frustum_scale,
                    visible=bool(g["cameras"].value) and k != view.inside)
                handle.on_click(self._frustum_clicked(k))
                view.frustums.append(handle)
        view.client.flush()

        def photos() -> None:
            self._thumbnails_done.wait()
            if g["photos"].value and not view._stop:
                self._set_photos(view, True)
        threading.Thread(target=photos, name="nerfw-view-photos", daemon=True).start()

    def _frustum_clicked(self, k: int):
        def callback(event) -> None:
            if event.client is not None:
                self.look_through(event.client, k)
        return callback

    def look_through(self, client, k: int) -> None:
        """Put a browser's camera at dataset camera k (its frustum is hidden while the view is there)."""
        cam, T = self._cameras[k]
        view = self.clients.get(client.client_id)
        if view is not None:
            self._hide_frustum(view, k)
        self.move_to(client, T, vertical_fov(cam))
        self.log(f"viewer: looking through {cam.name} ({cam.split})")

    def _hide_frustum(self, view: "ClientView", k: int | None) -> None:
        """Hide a tab's frustum k (None: none), showing the one hidden before."""
        frustums = view.frustums
        if view.inside is not None and view.inside != k and view.inside < len(frustums):
            frustums[view.inside].visible = bool(self._gui["cameras"].value)
        view.inside, view.arrived = k, False
        if k is not None and k < len(frustums):
            frustums[k].visible = False

    def _left_camera(self, view: "ClientView", position: np.ndarray) -> None:
        """Show the hidden frustum again once the tab's view has moved away from its camera."""
        k = view.inside
        if k is None:
            return
        if np.linalg.norm(position - self._cameras[k][1][:3, 3]) <= 0.5 * self.frustum_scale:
            view.arrived = True
        elif view.arrived:  # (camera messages sent before the browser got there do not count)
            self._hide_frustum(view, None)

    def _show_cameras(self) -> None:
        on = bool(self._gui["cameras"].value)
        for view in list(self.clients.values()):
            for k, handle in enumerate(list(view.frustums)):
                handle.visible = on and k != view.inside

    def _show_photos(self) -> None:
        for view in list(self.clients.values()):
            self._set_photos(view, bool(self._gui["photos"].value))

    def _set_photos(self, view: "ClientView", on: bool) -> None:
        for k, handle in enumerate(list(view.frustums)):
            if k in self._thumbnails:
                try:
                    handle.image = self._thumbnails[k] if on else None
                except Exception:  # the tab closed meanwhile
                    return

    def _show_ball(self) -> None:
        for view in list(self.clients.values()):
            if view.ball is not None:
                view.ball.visible = bool(self._gui["ball"].value)

    def _show_points(self) -> None:
        for view in list(self.clients.values()):
            if view.points is not None:
                view.points.visible = bool(self._gui["points"].value)

    def _add_thumbnails(self) -> None:
        """Read the photographs of the frustums once (they go to every tab)."""
        for k, (cam, _) in enumerate(self._cameras):
            if self.server is None:
                break
            if cam.split != "synth":
                image = thumbnail(cam.image_path)
                if image is not None:
                    self._thumbnails[k] = image
        self._thumbnails_done.set()

    # -------------------------------------------------------------- clients
    def _connect(self, client) -> None:
        view = ClientView(self, client)
        self.clients[client.client_id] = view
        def camera_moved(camera) -> None:
            view.changed(moved=True)
            self._left_camera(view, np.asarray(camera.position))

        client.camera.on_update(camera_moved)
        view.changed()

    def _disconnect(self, client) -> None:
        view = self.clients.pop(client.client_id, None)
        if view is not None:
            view.stop()

    def _settings_changed(self) -> None:
        for view in list(self.clients.values()):
            view.changed(moved=False)

    def move_to(self, client, T_model_cam: np.ndarray, fov: float | None = None) -> None:
        """Put a browser's camera at a model-frame pose (camera-to-model, OpenCV axes)."""
        with client.atomic():
            client.camera.wxyz = rotation_to_wxyz(T_model_cam[:3, :3])
            client.camera.position = np.asarray(T_model_cam[:3, 3], dtype=np.float64)
            if fov is not None:
                client.camera.fov = float(fov)
        client.flush()

    def settings(self) -> dict:
        """The GUI's current choices resolved: output, width, appearance vector, image id, renderer key."""
        g, model = self._gui, self.run.model
        first, second, t = g["appearance"].value, g["blend_to"].value, float(g["blend"].value)
        image_id = None
        if first == MEAN:
            vec = model.appearance_vector(mean=True)
            if second != NO_BLEND and t > 0:
                vec = (1 - t) * vec + t * model.appearance_vector(image_id=self.run.image_id(second))
        else:
            a = self.run.image_id(first)
            if second != NO_BLEND and t > 0:
                vec = model.appearance_vector(interpolate=(a, self.run.image_id(second), t))
            else:
                vec, image_id = model.appearance_vector(image_id=a), a
        output = g["output"].value
        full = uses_full_renderer(output, image_id is not None and bool(model.cfg.encode_t))
        return {"output": output, "width": int(g["width"].value), "appearance": vec, "image_id": image_id,
                "renderer": "full" if full else "fast"}

    def frame_rendered(self, view: ClientView) -> None:
        frame = view.last_frame
        if self.first_frame_at is None:
            self.first_frame_at = frame.time
        if self.first_full_frame_at is None and not frame.preview:
            self.first_full_frame_at = frame.time
        kind = "preview" if frame.preview else "full"
        self._gui["status"].content = (f"{kind} frame {frame.width}x{frame.height} in {frame.seconds:.2f} s · "
                                       f"step {self.run.step}")


# ----------------------------------------------------------------------------- while training
LIVE_UPDATE_S = 5.0  # `nerfw train --viewer`: seconds between copies of the training weights to the viewer


class LiveViewer:
    """`nerfw train --viewer`: the viewer on a copy of the model that the trainer refreshes every
    LIVE_UPDATE_S seconds (between optimiser steps, so a frame never mixes two steps' weights); the page shows
    the newest weights and the step / training PSNR."""

    def __init__(self, cfg, scene, normalization, host: str, port: int, log=print):

        check_port(host, port)
        self.model = build_model(cfg.model, n_images=len(scene.cameras)).eval()
        self.run = Run(cfg.train.run_dir, cfg, self.model, normalization, [c.name for c in scene.cameras], 0,
                       Path(""), _scene=scene)
        self.viewer = Viewer(self.run, host, port, log=log)
        self.last_update = 0.0
        self.log = log

    def start(self, model, step: int) -> str:
        self.model.to(next(model.parameters()).device)
        self.update(model, step, None)
        url = self.viewer.start()
        self.log(f"viewer: {url} (the newest weights every {LIVE_UPDATE_S:g} s; over SSH: "
                 f"ssh -L {self.viewer.port}:localhost:{self.viewer.port} <this host>)")
        return url

    def maybe_update(self, model, step: int, mse: float | None) -> None:
        if time.time() - self.last_update >= LIVE_UPDATE_S:
            self.update(model, step, mse)

    @torch.no_grad()
    def update(self, model, step: int, mse: float | None) -> None:
        with self.viewer.render_lock:
            self.model.load_state_dict(model.state_dict())
            self.run.step = step
        self.last_update = time.time()
        psnr = None if not mse or mse <= 0 else -10.0 * math.log10(mse)
        self.viewer.training = (step, psnr)
        if self.viewer.server is not None:
            self.viewer.refresh_info()
            for view in list(self.viewer.clients.values()):
                view.changed(moved=False)

    def stop(self) -> None:
        self.viewer.stop()


