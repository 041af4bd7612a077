"""SynthFER drawing: one face from identity parameters, action-unit intensities and nuisance factors.

Every part of the face is a polygon or polyline in normalised coordinates ([0, 1] square, eyes near the
ArcFace-112 template that ``ferkit.data.faces.TEMPLATES["default"]`` uses). All points go through one pose
transform (yaw on a cylinder-like depth model, roll, scale, shift), are drawn with PIL at twice the size
and box-downsampled (anti-aliasing), then lit by a linear gradient and given Gaussian noise.
Action units follow FACS names: AU1 inner brow raiser ... AU26 jaw drop; intensities are in [0, 1].
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from ferkit.data.synth_scene import background, finish
from ferkit.data.synth_scene import unit_range as _lin

#: the action units SynthFER draws, as metadata column names
AU_NAMES = ("au_01", "au_02", "au_04", "au_05", "au_06", "au_07", "au_09", "au_10", "au_12", "au_15",
            "au_16", "au_20", "au_23", "au_25", "au_26")
EYE_Y = 0.46          # template eye height (ArcFace 51.6 / 112)
EYE_SPACING = 0.315   # template inter-ocular distance
MOUTH_Y = 0.80        # mouth contact line (template corners at 0.824, lifted so the chin stays in frame)

def _col(rgb, k: float = 1.0) -> tuple[int, int, int]:
    r, g, b = rgb
    return (min(255, max(0, int(r * k + 0.5))), min(255, max(0, int(g * k + 0.5))),
            min(255, max(0, int(b * k + 0.5))))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, t))
    return _col((a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False          # cached arrays are shared: make accidental writes fail loudly
    return a


@lru_cache(maxsize=64)
def _circle(n: int) -> np.ndarray:
    """(n, 2) unit circle (cached; read-only)."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return _frozen(np.stack([np.cos(th), np.sin(th)], 1))


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    return _circle(n) * (rx, ry) + (cx, cy)


def pose_points(pts: np.ndarray, z: np.ndarray, half_width: float, pose: dict) -> np.ndarray:
    """Normalised points (P, 2) with extra depth z (P,) -> posed points (P, 2): yaw on a cylinder-like depth
    model of the head, then roll, scale and shift about the image centre."""
    dx = (pts[:, 0] - 0.5) / (half_width * 1.15)
    depth = 0.26 * np.sqrt(np.clip(1 - dx * dx, 0, 1)) + z
    yaw, roll = np.radians(pose["yaw"]), np.radians(pose["roll"])
    x = (pts[:, 0] - 0.5) * np.cos(yaw) + depth * np.sin(yaw)
    y = pts[:, 1] - 0.5
    cr, sr, s = np.cos(roll), np.sin(roll), pose["scale"]
    return np.stack([s * (cr * x - sr * y) + 0.5 + pose["shift_x"], s * (sr * x + cr * y) + 0.5 + pose["shift_y"]], 1)


class FaceSketch:
    """Drawing items in normalised face coordinates, each with extra depth for the yaw model."""

    def __init__(self, half_width: float) -> None:
        self.items: list[tuple[str, np.ndarray, tuple, float, float]] = []
        self.half_width = half_width

    def poly(self, pts: np.ndarray, fill: tuple, z: float = 0.0) -> None:
        self.items.append(("poly", pts, fill, 0.0, z))

    def line(self, pts: np.ndarray, fill: tuple, width: float, z: float = 0.0) -> None:
        self.items.append(("line", pts, fill, width, z))

    def render(self, canvas: Image.Image, pose: dict) -> None:
        """Pose all points at once (yaw, roll, scale, shift) and draw the items in order onto ``canvas``."""
        pts = np.concatenate([it[1] for it in self.items])                      # (P, 2)
        zx = np.repeat([it[4] for it in self.items], [len(it[1]) for it in self.items])  # (P,)
        side = canvas.size[0]
        flat = (pose_points(pts, zx, self.half_width, pose) * side).ravel().tolist()   # x0, y0, x1, y1, ...
        draw = ImageDraw.Draw(canvas)
        k = 0
        for kind, p, fill, width, _ in self.items:
            seg = flat[k:k + 2 * len(p)]
            k += 2 * len(p)
            if kind == "poly":
                draw.polygon(seg, fill=fill)
            else:
                draw.line(seg, fill=fill, width=max(1, int(width * side + 0.5)), joint="curve")


@lru_cache(maxsize=64)
def _arc(a0: float, a1: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of ``n`` angles from ``a0`` to ``a1`` (cached; read-only)."""
    th = np.linspace(a0, a1, n)
    return _frozen(np.cos(th)), _frozen(np.sin(th))


def _hair(sk: FaceSketch, idp: dict, front: bool) -> None:
    """Hair behind the head (front=False) or the cap over the skull with its hairline (front=True)."""
    a, cy, top = idp["face_w"], EYE_Y + 0.02, idp["face_top"]
    style, hair = idp["hair_style"], idp["hair_rgb"]
    vol = idp["hair_vol"] * (1.7 if style == "curly" else 0.6 if style == "buzz" else 1.0)
    if not front:
        if style in ("long", "bob"):
            bottom = 1.15 if style == "long" else idp["chin_y"] - 0.1
            w = a * (1.22 if style == "long" else 1.16)
            c, s = _arc(np.pi, 2 * np.pi, 16)
            arc = np.stack([0.5 + w * c, cy - 0.02 + (cy - top + vol + 0.01) * s], 1)
            sk.poly(np.vstack([[0.5 - w * 1.02, bottom], arc, [0.5 + w * 1.02, bottom]]), _col(hair, 0.8), z=-0.2)
        elif style == "curly":
            c, s = _arc(0, 2 * np.pi, 48)
            r = a * 1.28 + 0.02 * np.sin(np.linspace(0, 28 * np.pi, 48))
            sk.poly(np.stack([0.5 + r * c, cy - 0.08 + 0.9 * r * s], 1), _col(hair, 0.85), z=-0.2)
        return
    c, s = _arc(np.pi * 1.02, np.pi * 1.98, 24)
    bump = 0.012 * np.sin(np.linspace(0, 24 * np.pi, 24)) if style == "curly" else 0.0
    outer = np.stack([0.5 + (a + vol + bump) * c, cy + (cy - top + vol + bump) * s], 1)
    hx = 0.5 - a * 0.93 * _lin(15)
    u = (hx - 0.5) / a
    hl = EYE_Y - {"short": 0.2, "long": 0.19, "bob": 0.175, "buzz": 0.21, "side": 0.19, "curly": 0.2,
                  "receding": 0.3}[style] + idp["hairline"]
    hy = hl + (0.2 if style == "receding" else 0.11) * u ** 4
    if style == "bob":
        hy = hl + 0.03 * u ** 2 + 0.008 * (np.arange(15) % 2)              # jagged fringe
    elif style == "side":
        hy = hy + 0.05 / (1 + np.exp(-(hx - idp["part_x"]) / 0.025)) - 0.03
    elif style == "long":
        hy = hy - 0.03 * np.exp(-((hx - 0.5) / 0.05) ** 2)                  # centre parting
    sideburn = np.array([[0.5 + a * 1.0, EYE_Y + 0.02], [0.5 + a * 0.93, EYE_Y + 0.02]])
    cap = np.vstack([outer, sideburn, np.stack([hx, hy], 1), sideburn[::-1] * [-1, 1] + [1, 0]])
    color = _mix(hair, idp["skin_rgb"], 0.55) if style == "buzz" else hair
    sk.poly(cap, color, z=0.02)
    if style != "buzz":
        for k in range(5):
            x0 = 0.5 + a * (-0.6 + 0.3 * k)
            y0 = hl + 0.11 * ((x0 - 0.5) / a) ** 4 - 0.015
            strand = np.array([[x0, y0], [0.5 + (x0 - 0.5) * 0.75, (y0 + top) / 2], [0.5 + (x0 - 0.5) * 0.5, top + 0.03]])
            sk.line(strand, _col(hair, 0.7 if k % 2 else 1.3), 0.004)


def _head_outline(idp: dict) -> tuple[np.ndarray, np.ndarray]:
    """Head outline offsets from (0.5, EYE_Y + 0.02): an ellipse whose lower half narrows to the jaw."""
    c, s = _arc(0, 2 * np.pi * 63 / 64, 64)
    w = 1 - idp["jaw"] * np.maximum(s, 0) ** 2.2
    cy = EYE_Y + 0.02
    return idp["face_w"] * c * w, np.where(s > 0, idp["chin_y"] - cy, cy - idp["face_top"]) * s


def static_layers(idp: dict) -> tuple[list, list, list]:
    """Items that depend on identity only (drawn behind the face, over the skull, and glasses)."""
    skin, a = idp["skin_rgb"], idp["face_w"]
    back = FaceSketch(a)
    _hair(back, idp, front=False)
    cy = EYE_Y + 0.02
    back.poly(np.array([[0.5 - a * 0.55, cy + 0.2], [0.5 + a * 0.55, cy + 0.2], [0.5 + a * 0.62, 1.2],
                        [0.5 - a * 0.62, 1.2]]), _col(skin, 0.72), z=-0.1)
    for s in (-1, 1):
        back.poly(_ellipse(0.5 + s * a * 0.97, EYE_Y + 0.065, 0.034, 0.072, 16), _col(skin, 0.9), z=-0.08)
        back.line(_ellipse(0.5 + s * a * 0.985, EYE_Y + 0.06, 0.016, 0.045, 12)[2:9], _col(skin, 0.66), 0.006,
                  z=-0.08)
    front = FaceSketch(a)
    _hair(front, idp, front=True)
    glasses = FaceSketch(a)
    if idp["glasses"] != "none":
        _glasses(glasses, idp)
    return back.items, front.items, glasses.items


def _eye(sk: FaceSketch, idp: dict, au: dict, side: int) -> None:
    """Sclera, iris, pupil and catchlight, then lid covers, crease and lid lines (AU5/6/7/4 open or close)."""
    skin = idp["skin_rgb"]
    ex, ey = 0.5 + side * idp["eye_sp"] * EYE_SPACING / 2, EYE_Y
    size = idp["eye_size"]
    hw = 0.053 * size
    opening = idp["rest_open"] * (1 + 1.2 * au["au_05"] - 0.4 * au["au_07"] - 0.35 * au["au_06"] - 0.25 * au["au_04"])
    hu = 0.022 * size * max(opening, 0.2)
    hl = 0.015 * size * (1 - 0.6 * au["au_07"] - 0.5 * au["au_06"]) + 0.004 * au["au_05"]
    t = _lin(13)
    xs = ex + hw * t
    tilt = -0.004 * side * t
    env = 1 - t * t
    upper = np.stack([xs, ey - hu * env ** 0.75 + tilt], 1)
    lower = np.stack([xs, ey + hl * env ** 0.9 + tilt], 1)
    sk.poly(np.vstack([upper, lower[::-1]]), (236, 232, 226), z=0.01)
    ri = 0.022 * size
    ix, iy = ex + idp["gaze"], ey + 0.003
    sk.poly(_ellipse(ix, iy, ri, ri, 16), idp["iris_rgb"], z=0.015)
    sk.poly(_ellipse(ix, iy, ri * 0.45, ri * 0.45, 12), (18, 14, 14), z=0.015)
    sk.poly(_ellipse(ix + 0.006, iy - 0.007, 0.0045, 0.0045, 8), (250, 250, 250), z=0.015)
    sk.poly(np.vstack([upper, upper[::-1] - [0, 0.05]]), idp["lid_rgb"], z=0.01)
    sk.poly(np.vstack([lower, lower[::-1] + [0, 0.03]]), _col(skin, 0.98), z=0.01)
    crease = upper[2:-2] - [0, 0.011 + 0.007 * (1 - min(au["au_05"], 1.0))]
    sk.line(crease, _col(skin, 0.76), 0.004, z=0.01)
    sk.line(upper, (40, 28, 26), 0.009, z=0.01)
    outer = upper[0] if side < 0 else upper[-1]
    sk.line(np.array([outer, outer + [side * 0.013, -0.007]]), (40, 28, 26), 0.007, z=0.01)
    sk.line(lower[1:-1], _col(skin, 0.74), 0.004, z=0.01)
    if au["au_06"] > 0.25:
        k = au["au_06"]
        sk.line(lower[2:-2] + [0, 0.015], _col(skin, 1 - 0.22 * k), 0.004, z=0.01)
        corner = lower[0] if side < 0 else lower[-1]
        for dy in (-0.012, 0.0, 0.012):
            sk.line(np.array([corner + [side * 0.012, dy * 0.5], corner + [side * (0.012 + 0.022 * k), dy]]),
                    _col(skin, 1 - 0.25 * k), 0.0035)


def _brow(sk: FaceSketch, idp: dict, au: dict, side: int) -> None:
    """Brow from inner to outer end: AU1 raises the inner end, AU2 the outer, AU4 lowers and draws it in."""
    ex = 0.5 + side * idp["eye_sp"] * EYE_SPACING / 2
    inner, outer = ex - side * 0.052, ex + side * 0.078
    base = EYE_Y - 0.085 * idp["brow_gap"] + idp["rest_brow"]
    u = 0.5 + 0.5 * _lin(7)
    x = inner + (outer - inner) * u - side * 0.025 * au["au_04"] * (1 - u)
    y = base - 0.02 * np.sin(np.pi * np.minimum(u * 1.1, 1.0))
    y = y - 0.05 * au["au_01"] * (1 - u) ** 1.2 - 0.045 * au["au_02"] * u ** 1.1 - 0.012 * au["au_02"]
    y = y + au["au_04"] * (0.012 + 0.04 * (1 - u)) + 0.012 * au["au_09"] * (1 - u)
    th = 0.02 * idp["brow_thick"] * (1 - 0.5 * u)
    pts = np.vstack([np.stack([x, y - th / 2], 1), np.stack([x, y + th / 2], 1)[::-1]])
    sk.poly(pts, idp["brow_rgb"], z=0.02)


def _mouth(sk: FaceSketch, idp: dict, au: dict) -> None:
    """Lips, dark interior and teeth. AU12/15 move the corners, AU20/23 width, AU10/16/25/26 open it."""
    skin, lip = idp["skin_rgb"], idp["lip_rgb"]
    my = MOUTH_Y + idp["mouth_dy"]
    corner = -0.045 * au["au_12"] + 0.035 * au["au_15"] + 0.012 * au["au_20"] + idp["rest_curv"]
    hw = 0.125 * idp["mouth_w"] * (1 + 0.22 * au["au_12"] + 0.3 * au["au_20"] - 0.2 * au["au_23"]
                                   - 0.15 * au["au_26"])
    top = 0.006 * au["au_25"] + 0.012 * au["au_26"] + 0.022 * au["au_10"] + 0.01 * au["au_12"] * au["au_25"]
    bot = (0.006 * au["au_25"] + 0.06 * au["au_26"] + 0.02 * au["au_16"] + 0.012 * au["au_20"] * au["au_25"]
           + 0.012 * au["au_12"] * au["au_25"])
    t = _lin(17)
    xs = 0.5 + hw * t
    yc = my + corner * t * t
    env = 1 - t * t
    yu = yc - top * env ** (0.6 - 0.4 * au["au_10"])
    yl = yc + bot * env ** 0.7
    thick = idp["lip_full"] * (1 - 0.65 * au["au_23"])
    ou = yu - 0.016 * thick * (0.3 + 0.7 * np.sqrt(env)) * (1 - 0.3 * np.exp(-((t / 0.12) ** 2)))
    ol = yl + 0.021 * thick * env ** 0.55
    sk.line(np.array([[0.5, my - 0.06], [0.5, ou[8] - 0.004]]), _col(skin, 0.9), 0.012, z=0.04)   # philtrum
    sk.line(np.stack([xs[4:13], ol[4:13] + 0.028 + 0.02 * au["au_26"]], 1), _col(skin, 0.86), 0.006, z=0.03)
    gap = top + bot
    if gap > 0.003:
        sk.poly(np.vstack([np.stack([xs, yu], 1), np.stack([xs, yl], 1)[::-1]]), (70, 22, 28), z=0.03)
        k = slice(3, 14)
        th = np.minimum(yu[k] + 0.024, yl[k])
        sk.poly(np.vstack([np.stack([xs[k], yu[k]], 1), np.stack([xs[k], th], 1)[::-1]]), (238, 234, 222), z=0.03)
        lower_teeth = min(1.0, au["au_16"] + 0.8 * au["au_20"])
        if lower_teeth > 0.1:
            tb = np.maximum(yl[k] - 0.016 * lower_teeth, th)
            sk.poly(np.vstack([np.stack([xs[k], tb], 1), np.stack([xs[k], yl[k]], 1)[::-1]]), (225, 220, 208),
                    z=0.03)
    sk.poly(np.vstack([np.stack([xs, ou], 1), np.stack([xs, yu], 1)[::-1]]), _col(lip, 0.86), z=0.035)
    sk.poly(np.vstack([np.stack([xs, yl], 1), np.stack([xs, ol], 1)[::-1]]), lip, z=0.035)
    if gap <= 0.003:
        sk.line(np.stack([xs, yc], 1), _col(lip, 0.42), 0.006, z=0.035)
    else:
        sk.line(np.stack([xs, yu], 1), _col(lip, 0.6), 0.003, z=0.035)
    for s in (-1, 1):
        c = np.array([0.5 + s * hw, yc[0]])
        sk.line(np.array([c, c + [s * 0.008, -0.004 * np.sign(corner) - 0.001]]), _col(skin, 0.7), 0.005,
                z=0.03)


def _nose(sk: FaceSketch, idp: dict, au: dict) -> None:
    """Bridge shadow, alar wings, nostrils and tip; AU9 raises and flares it and wrinkles the bridge."""
    skin = idp["skin_rgb"]
    ny = EYE_Y + 0.175 * idp["nose_len"] - 0.012 * au["au_09"] - 0.006 * au["au_10"]
    nw = 0.034 * idp["nose_w"] * (1 + 0.25 * au["au_09"])
    sk.line(np.array([[0.522, EYE_Y + 0.02], [0.528, EYE_Y + 0.09], [0.5 + nw * 0.8, ny - 0.02]]),
            _col(skin, 0.84), 0.008, z=0.05)
    sk.poly(_ellipse(0.5, ny - 0.008, nw * 0.7, 0.02, 14), _col(skin, 1.06), z=0.09)
    sk.poly(_ellipse(0.5, ny + 0.014, nw * 1.25, 0.012, 14), _col(skin, 0.84), z=0.07)
    for s in (-1, 1):
        c, sn = _arc(-1.9, 1.2, 8)
        wing = np.stack([0.5 + s * (nw * 0.9 + 0.017 * c), ny + 0.003 + 0.017 * sn], 1)
        sk.line(wing, _col(skin, 0.66), 0.006, z=0.06)
        sk.poly(_ellipse(0.5 + s * nw * 0.5, ny + 0.013, 0.012, 0.0065, 10), _col(skin, 0.35), z=0.07)
    if au["au_09"] > 0.2:
        for k in range(3):
            yy = EYE_Y + 0.025 + 0.014 * k
            sk.line(np.array([[0.5 - 0.024, yy + 0.004], [0.5, yy], [0.5 + 0.024, yy + 0.004]]),
                    _col(skin, 1 - 0.3 * au["au_09"]), 0.0045, z=0.05)


def _folds(sk: FaceSketch, idp: dict, au: dict) -> None:
    """Nasolabial folds (deepened by AU6/9/10/12/20), forehead and glabella wrinkles (AU1/2, AU4)."""
    skin = idp["skin_rgb"]
    f = max(0.9 * au["au_12"], au["au_10"], 0.8 * au["au_09"], 0.5 * au["au_06"], 0.5 * au["au_20"]) + idp["age"]
    if f > 0.25:
        hwm = 0.125 * idp["mouth_w"] * (1 + 0.22 * au["au_12"] + 0.3 * au["au_20"])
        t = 0.5 + 0.5 * _lin(6)
        for s in (-1, 1):
            x = 0.5 + s * (0.072 + (hwm - 0.045) * t + 0.04 * np.sin(np.pi * t) * (0.6 + au["au_12"]))
            y = EYE_Y + 0.165 + (MOUTH_Y + 0.025 - EYE_Y - 0.165) * t
            sk.line(np.stack([x, y], 1), _col(skin, 1 - 0.17 * min(f, 1.0)), 0.0055, z=0.02)
    base = EYE_Y - 0.085 * idp["brow_gap"] + idp["rest_brow"]
    if max(au["au_01"], au["au_02"]) > 0.35:
        span = 0.07 + 0.08 * au["au_02"] / max(au["au_01"] + au["au_02"], 1e-6)
        x = 0.5 + span * _lin(7)
        for k in range(3):
            y = base - 0.065 - 0.02 * k - 0.006 * np.cos(_lin(7) * np.pi / 2)
            sk.line(np.stack([x, y], 1), _col(skin, 1 - 0.18 * max(au["au_01"], au["au_02"])), 0.0035)
    if au["au_04"] > 0.3:
        for s in (-1, 1):
            sk.line(np.array([[0.5 + s * 0.014, base - 0.005], [0.5 + s * 0.01, base + 0.03]]),
                    _col(skin, 1 - 0.28 * au["au_04"]), 0.005, z=0.03)


def _glasses(sk: FaceSketch, idp: dict) -> None:
    """Frames (round or rectangular), bridge and arms to the ears."""
    a, col = idp["face_w"], idp["glasses_rgb"]
    w = 0.007 if idp["glasses"] == "round" else 0.01
    for s in (-1, 1):
        ex = 0.5 + s * idp["eye_sp"] * EYE_SPACING / 2
        if idp["glasses"] == "round":
            rim = _ellipse(ex, EYE_Y + 0.008, 0.064, 0.054, 24)
        else:
            rim = np.array([[ex - 0.072, EYE_Y - 0.036], [ex + 0.072, EYE_Y - 0.039], [ex + 0.068, EYE_Y + 0.046],
                            [ex - 0.068, EYE_Y + 0.046]])
        sk.line(np.vstack([rim, rim[:1]]), col, w, z=0.06)
        sk.line(np.array([[ex + s * 0.068, EYE_Y - 0.015], [0.5 + s * a * 0.99, EYE_Y + 0.01]]), col, w, z=0.0)
    sk.line(np.array([[0.5 - 0.03, EYE_Y - 0.012], [0.5, EYE_Y - 0.022], [0.5 + 0.03, EYE_Y - 0.012]]), col, w,
            z=0.07)


def face_landmarks(idp: dict, au: dict, nz: dict, size: int) -> np.ndarray:
    """Where the drawn face's 5 points land, (5, 2) pixels: eye centres (image left first), nose tip and
    mouth corners, in the order of ``ferkit.data.faces.LANDMARK_NAMES``. Pixel i's centre is at i (drawing at
    2x and box-downsampling shifts a point at normalised u to u * size - 0.25)."""
    half = idp["eye_sp"] * EYE_SPACING / 2
    ny = EYE_Y + 0.175 * idp["nose_len"] - 0.012 * au["au_09"] - 0.006 * au["au_10"]
    hw = 0.125 * idp["mouth_w"] * (1 + 0.22 * au["au_12"] + 0.3 * au["au_20"] - 0.2 * au["au_23"] - 0.15 * au["au_26"])
    my = MOUTH_Y + idp["mouth_dy"] - 0.045 * au["au_12"] + 0.035 * au["au_15"] + 0.012 * au["au_20"] + idp["rest_curv"]
    pts = np.array([[0.5 - half, EYE_Y + 0.003], [0.5 + half, EYE_Y + 0.003], [0.5, ny], [0.5 - hw, my], [0.5 + hw, my]])
    return pose_points(pts, np.array([0.015, 0.015, 0.09, 0.035, 0.035]), idp["face_w"], nz) * size - 0.25


def render_face(idp: dict, au: dict, nz: dict, size: int, rng: np.random.Generator,
                static: tuple[list, list, list] | None = None) -> np.ndarray:
    """One SynthFER image, uint8 (size, size, 3) RGB, deterministic given ``rng``'s state.

    idp: identity parameters; au: action-unit intensities by ``AU_NAMES``; nz: nuisance factors;
    static: ``static_layers(idp)`` when the caller reuses it across images of one identity.
    """
    side = 2 * size
    canvas = background(rng, nz, side)
    back, front, glasses = static if static is not None else static_layers(idp)
    skin, a = idp["skin_rgb"], idp["face_w"]
    sk = FaceSketch(a)
    sk.items.extend(back)
    cy = EYE_Y + 0.02
    hx, hy = _head_outline(idp)
    drop = (0.055 * au["au_26"] + 0.01 * au["au_25"]) * np.clip((hy + cy - MOUTH_Y + 0.02) / 0.12, 0, 1)
    for k, shade in ((1.0, 0.86), (0.93, 0.92), (0.82, 0.97), (0.66, 1.0)):
        sk.poly(np.stack([0.5 + k * hx, cy + 0.04 + k * (hy - 0.04) + drop], 1), _col(skin, shade))
    for s in (-1, 1):
        bx, by = 0.5 + s * 0.17, EYE_Y + 0.14 - 0.02 * au["au_06"]
        glow = idp["blush"] + 0.15 * au["au_06"] + 0.08 * au["au_12"]
        sk.poly(_ellipse(bx, by, 0.06, 0.04, 14), _mix(skin, (225, 105, 105), 0.5 * glow), z=0.02)
        sk.poly(_ellipse(bx, by, 0.04, 0.026, 12), _mix(skin, (225, 105, 105), glow), z=0.02)
    _folds(sk, idp, au)
    _nose(sk, idp, au)
    _mouth(sk, idp, au)
    sk.items.extend(front)
    for s in (-1, 1):
        _eye(sk, idp, au, s)
        _brow(sk, idp, au, s)
    sk.items.extend(glasses)
    sk.render(canvas, nz)
    return finish(canvas, nz, size, rng)
