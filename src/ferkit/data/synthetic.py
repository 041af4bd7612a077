"""SynthFER: procedurally rendered faces with known identity, expression (FACS action units) and nuisance.

Identities are split into disjoint train/val/test sets. ``confounding`` in [0, 1] ties identity to
expression in training only: each training identity gets one or two "favourite" expressions whose share
of its images is ``(1 - c) / 7 + c * w_fav``, and its resting face carries ``c * REST_FRACTION`` of its first
favourite's prototype action units. Validation and test identities show every expression equally and their
resting faces point at a random expression, so identity is a shortcut in training and a trap on unseen
faces. Everything is a pure function of the arguments (same seed, same bytes, whatever the worker count).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.data import labels
from ferkit.data.records import DatasetSplit, Sample
from ferkit.data.synth_render import AU_NAMES, face_landmarks, render_face, static_layers
from ferkit.errors import FerkitError

#: EMFACS prototypes (intensity of each action unit at full expression), in labels.SYNTHFER order
PROTOTYPES: tuple[dict[str, float], ...] = (
    {},                                                                                  # neutral
    {"au_06": 0.8, "au_12": 1.0, "au_25": 0.7},                                          # happy 6+12
    {"au_01": 1.0, "au_04": 0.6, "au_15": 1.0},                                          # sad 1+4+15
    {"au_01": 1.0, "au_02": 1.0, "au_05": 1.0, "au_25": 0.8, "au_26": 1.0},              # surprise 1+2+5+26
    {"au_01": 1.0, "au_02": 0.6, "au_04": 0.7, "au_05": 1.0, "au_07": 0.4, "au_20": 1.0,
     "au_25": 1.0, "au_26": 0.5},                                                        # fear 1+2+4+5+7+20+26
    {"au_09": 1.0, "au_10": 0.8, "au_15": 0.5, "au_16": 0.4, "au_25": 0.4},              # disgust 9+10+15+16
    {"au_04": 1.0, "au_05": 0.6, "au_07": 0.8, "au_23": 1.0},                            # anger 4+5+7+23
)
REST_FRACTION = 0.4      # resting AUs = confounding x this x the favourite's prototype
SKIN = ((250, 220, 195), (240, 200, 170), (225, 180, 145), (205, 150, 115), (175, 120, 85), (140, 95, 65),
        (105, 70, 48), (85, 57, 40))
HAIR = {"black": (28, 24, 24), "dark_brown": (60, 40, 28), "brown": (105, 72, 45), "auburn": (135, 62, 35),
        "blond": (205, 170, 105), "grey": (160, 158, 155), "platinum": (225, 215, 190)}
HAIR_STYLES = ("short", "long", "bob", "buzz", "side", "curly", "receding")
IRIS = ((95, 60, 35), (55, 38, 28), (75, 115, 165), (80, 120, 85), (125, 100, 55), (115, 125, 135))
FRAMES = ((20, 20, 20), (90, 55, 30), (190, 160, 80), (170, 170, 175))
BG_TEXTURES = ("flat", "gradient", "blotch", "stripes")
NUISANCE = ("yaw", "roll", "scale", "shift_x", "shift_y", "light_angle", "light_strength", "brightness",
            "noise_sigma", "bg_r", "bg_g", "bg_b", "bg_texture", "bg_texture_strength")
#: where the 5 face points land, in pixels (order of ferkit.data.faces.LANDMARK_NAMES)
LANDMARK_COLUMNS = ("eye_l_x", "eye_l_y", "eye_r_x", "eye_r_y", "nose_x", "nose_y", "mouth_l_x", "mouth_l_y",
                    "mouth_r_x", "mouth_r_y")
COLUMNS = ("file", "subject", "expression", "expression_name", "split", "intensity", *AU_NAMES,
           "rest_expression", "rest_strength", *NUISANCE, "skin_tone", "hair_style", "hair_colour", "glasses",
           *LANDMARK_COLUMNS)
SPLITS = ("train", "val", "test")
_PROTO = np.array([[p.get(a, 0.0) for a in AU_NAMES] for p in PROTOTYPES])       # (7, A)


@dataclass
class SynthFER:
    """A rendered SynthFER set: splits of in-memory samples, the metadata rows and the parameters."""

    splits: dict[str, DatasetSplit]
    rows: list[dict]
    params: dict = field(default_factory=dict)


def sample_identity(seed: int, subject: int) -> dict:
    """The persistent look of identity ``subject``: shape, proportions, colours, hair, eyewear, resting face."""
    r = np.random.default_rng([seed, 2, subject])
    u = r.uniform
    skin_i, hair_i = int(r.integers(len(SKIN))), str(r.choice(list(HAIR)))
    skin = tuple(int(min(255.0, v * u(0.94, 1.06))) for v in SKIN[skin_i])
    hair = HAIR[hair_i]
    glasses = str(r.choice(["none", "round", "rect"], p=[0.6, 0.2, 0.2]))
    mix = u(0.25, 0.45)
    lip = tuple(int(s + (t - s) * mix) for s, t in zip(skin, (185, 75, 85), strict=True))
    return {
        "face_w": u(0.35, 0.41), "face_top": u(0.03, 0.08), "chin_y": u(0.96, 1.02), "jaw": u(0.12, 0.38),
        "eye_sp": u(0.95, 1.05), "eye_size": u(0.88, 1.12), "nose_len": u(0.9, 1.1), "nose_w": u(0.85, 1.2),
        "mouth_w": u(0.88, 1.12), "mouth_dy": u(-0.012, 0.012), "lip_full": u(0.7, 1.3),
        "brow_thick": u(0.75, 1.4), "brow_gap": u(0.9, 1.1),
        "rest_brow": u(-0.008, 0.008), "rest_open": u(0.88, 1.12), "rest_curv": u(-0.006, 0.006),
        "skin_tone": skin_i, "skin_rgb": skin, "lip_rgb": lip, "lid_rgb": tuple(int(v * 0.93) for v in skin), "iris_rgb": IRIS[int(r.integers(len(IRIS)))],
        "hair_style": str(r.choice(HAIR_STYLES, p=[0.2, 0.18, 0.16, 0.1, 0.16, 0.1, 0.1])), "hair_colour": hair_i,
        "hair_rgb": hair, "brow_rgb": tuple(int(min(h + (c - h) * 0.45, s * 0.5)) for h, c, s in zip(hair, (30, 22, 18), skin, strict=True)),
        "part_x": u(0.38, 0.62), "hair_vol": u(0.02, 0.06), "hairline": u(-0.015, 0.02), "gaze": u(-0.004, 0.004), "blush": u(0.0, 0.15), "age": u(0.0, 0.2),
        "glasses": glasses, "glasses_rgb": FRAMES[int(r.integers(len(FRAMES)))],
    }


def sample_nuisance(r: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` draws of small pose, scale and shift, lighting, noise and background (arrays by factor)."""
    return {
        "yaw": r.uniform(-12, 12, n), "roll": r.uniform(-7, 7, n), "scale": r.uniform(0.93, 1.07, n),
        "shift_x": r.uniform(-0.03, 0.03, n), "shift_y": r.uniform(-0.03, 0.03, n),
        "light_angle": r.uniform(0, 2 * np.pi, n), "light_strength": r.uniform(0.0, 0.25, n),
        "brightness": r.uniform(0.85, 1.1, n), "noise_sigma": r.uniform(0.0, 5.0, n),
        "bg_r": r.uniform(40, 220, n), "bg_g": r.uniform(40, 220, n), "bg_b": r.uniform(40, 220, n),
        "bg_texture": r.choice(np.array(BG_TEXTURES), n), "bg_texture_strength": r.uniform(0.05, 0.3, n),
    }


def _largest_remainder(total: int, p: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``total * p`` (ties to the lower class index)."""
    raw = total * p
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _check(identities: int, images_per_identity: int, size: int, confounding: float,
           split_fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    if not 0.0 <= confounding <= 1.0:
        raise FerkitError(f"SynthFER confounding must be in [0, 1], got {confounding}; pass a value such as 0.5.")
    if size < 32:
        raise FerkitError(f"SynthFER image size {size} is too small to draw a face; use 32 pixels or more.")
    if images_per_identity < 1:
        raise FerkitError(f"SynthFER needs at least 1 image per identity, got {images_per_identity}.")
    fr = [float(f) for f in split_fractions]
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6 or fr[0] <= 0:
        raise FerkitError(f"SynthFER split fractions {tuple(split_fractions)} must be three non-negative numbers "
                          "(train > 0) that sum to 1, e.g. 0.6 0.2 0.2.")
    n_val = max(1, round(fr[1] * identities)) if fr[1] > 0 else 0
    n_test = max(1, round(fr[2] * identities)) if fr[2] > 0 else 0
    if identities - n_val - n_test < 1:
        raise FerkitError(f"SynthFER with {identities} identities leaves none for training after the "
                          f"val/test split {tuple(fr)}; use more identities.")
    return identities - n_val - n_test, n_val, n_test


def plan_synthfer(identities: int = 24, images_per_identity: int = 56, size: int = 112,
                  confounding: float = 0.0, seed: int = 0,
                  split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> list[dict]:
    """The metadata rows (every factor of every image) without drawing anything."""
    n_train, n_val, _ = _check(identities, images_per_identity, size, confounding, split_fractions)
    num = labels.SYNTHFER.num_classes
    r = np.random.default_rng([seed, 0])
    perm = r.permutation(identities)
    split_of = {int(s): ("train" if k < n_train else "val" if k < n_train + n_val else "test")
                for k, s in enumerate(perm)}
    class_order = r.permutation(num)
    train_rank = {int(s): k for k, s in enumerate(perm[:n_train])}
    rows: list[dict] = []
    c = float(confounding)
    for subject in range(identities):
        ident = sample_identity(seed, subject)
        ri = np.random.default_rng([seed, 1, subject])
        split = split_of[subject]
        if split == "train":
            fav = np.zeros(num)
            first = int(class_order[train_rank[subject] % num])
            if ri.random() < 0.5:
                fav[first] = 1.0
            else:
                fav[first] = 0.65
                fav[int(ri.choice([k for k in range(num) if k != first]))] = 0.35
            counts = _largest_remainder(images_per_identity, (1 - c) / num + c * fav)
            rest = first
        else:
            counts = np.full(num, images_per_identity // num)
            extra = images_per_identity % num
            counts[(subject * extra + np.arange(extra)) % num] += 1
            rest = int(ri.integers(1, num))
        expressions = ri.permutation(np.repeat(np.arange(num), counts))                 # (M,)
        rest_strength = round(c * REST_FRACTION, 4)
        m = images_per_identity
        rj = np.random.default_rng([seed, 3, subject])
        intensity = np.where(expressions > 0, rj.uniform(0.6, 1.0, m), 0.0)             # (M,)
        jitter = rj.uniform(0.85, 1.15, (m, len(AU_NAMES)))                               # (M, A)
        aus = np.clip(rest_strength * _PROTO[rest] + intensity[:, None] * jitter * _PROTO[expressions], 0, 1)
        columns = {"intensity": intensity, **dict(zip(AU_NAMES, aus.T, strict=True))}
        columns.update(sample_nuisance(rj, m))
        lists = {k: (np.round(v, 4) if v.dtype.kind == "f" else v).tolist() for k, v in columns.items()}
        fixed = {"split": split, "rest_expression": labels.SYNTHFER.classes[rest], "rest_strength": rest_strength,
                 "skin_tone": ident["skin_tone"], "hair_style": ident["hair_style"],
                 "hair_colour": ident["hair_colour"], "glasses": ident["glasses"]}
        for j, expr in enumerate(expressions.tolist()):
            index = subject * m + j
            row = {"file": f"images/{index:06d}.png", "subject": subject, "expression": expr,
                   "expression_name": labels.SYNTHFER.classes[expr], **fixed}
            row.update({k: v[j] for k, v in lists.items()})
            marks = face_landmarks(ident, {a: row[a] for a in AU_NAMES}, row, size).ravel()
            row.update(zip(LANDMARK_COLUMNS, np.round(marks, 2).tolist(), strict=True))
            rows.append({k: row[k] for k in COLUMNS})
    return rows


def render_row(row: dict, size: int, seed: int, identity: dict | None = None,
               static: tuple | None = None) -> np.ndarray:
    """The image of one metadata row: uint8 (size, size, 3) RGB."""
    ident = identity if identity is not None else sample_identity(seed, int(row["subject"]))
    index = int(Path(row["file"]).stem)
    return render_face(ident, {k: float(row[k]) for k in AU_NAMES}, row, size,
                       np.random.default_rng([seed, 4, index]), static)


def _render_chunk(job: tuple[list[dict], int, int]) -> list[np.ndarray]:
    rows, size, seed = job
    cache: dict[int, tuple[dict, tuple]] = {}
    out = []
    for row in rows:
        s = int(row["subject"])
        if s not in cache:
            ident = sample_identity(seed, s)
            cache[s] = (ident, static_layers(ident))
        out.append(render_row(row, size, seed, *cache[s]))
    return out


def render_rows(rows: list[dict], size: int, seed: int, workers: int = 1,
                progress: bool = False) -> list[np.ndarray]:
    """Images for ``rows``; ``workers`` > 1 splits the rows over processes (same bytes either way)."""
    from ferkit.progress import progress_bar

    step = 64
    jobs = [(rows[a:a + step], size, seed) for a in range(0, len(rows), step)]
    bar = progress_bar(total=len(rows), desc="SynthFER", unit="img", enabled=progress)
    out: list[np.ndarray] = []
    if workers <= 1 or len(jobs) < 2:
        chunks = map(_render_chunk, jobs)
        for chunk in chunks:
            out.extend(chunk)
            bar.update(len(chunk))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(min(workers, len(jobs))) as pool:
            for chunk in pool.imap(_render_chunk, jobs):
                out.extend(chunk)
                bar.update(len(chunk))
    bar.close()
    return out


def render_synthfer(identities: int = 24, images_per_identity: int = 56, size: int = 112,
                    confounding: float = 0.0, seed: int = 0,
                    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                    workers: int = 1, progress: bool = False) -> SynthFER:
    """Render SynthFER in memory: ``SynthFER.splits`` ("train", "val", "test") of uint8 RGB samples."""
    params = {"identities": int(identities), "images_per_identity": int(images_per_identity), "size": int(size),
              "confounding": float(confounding), "seed": int(seed),
              "split_fractions": [float(f) for f in split_fractions]}
    rows = plan_synthfer(identities, images_per_identity, size, confounding, seed, tuple(split_fractions))
    images = render_rows(rows, int(size), int(seed), workers, progress)
    samples: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for row, img in zip(rows, images, strict=True):
        meta = {**row, "source": f"synthfer/{row['file']}"}
        samples[row["split"]].append(Sample(image=img, expression=row["expression"], subject=row["subject"],
                                            meta=meta))
    splits = {s: DatasetSplit(name="synthetic", split=s, label_space=labels.SYNTHFER, samples=samples[s],
                              info={"synthfer": params}) for s in SPLITS}
    return SynthFER(splits=splits, rows=rows, params=params)


def write_synthfer(out_dir: str | Path, identities: int = 24, images_per_identity: int = 56, size: int = 112,
                   confounding: float = 0.0, seed: int = 0,
                   split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), workers: int = 1,
                   overwrite: bool = False, progress: bool = False) -> Path:
    """Write images/NNNNNN.png, metadata.csv, splits/{train,val,test}.txt and synthfer.json under ``out_dir``.

    A non-empty ``out_dir`` is refused unless ``overwrite`` and it holds a previous SynthFER (its files are
    then removed first, so no stale image outlives its metadata row).
    """
    from PIL import Image

    from ferkit import __version__

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FerkitError(f"SynthFER output {out} is a file; name a folder to write into.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FerkitError(f"SynthFER output folder {out} is not empty; name a new folder, or pass --overwrite "
                              "to replace the SynthFER written there before.")
        if not (out / "synthfer.json").is_file():
            raise FerkitError(f"Folder {out} is not empty and holds no synthfer.json, so it is not a SynthFER "
                              "folder ferkit may overwrite; name a new or empty folder.")
        for old in [*(out / "images").glob("*.png"), *(out / "splits").glob("*.txt"), out / "metadata.csv",
                    out / "synthfer.json"]:
            old.unlink(missing_ok=True)
    ds = render_synthfer(identities, images_per_identity, size, confounding, seed, split_fractions, workers,
                         progress)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "splits").mkdir(exist_ok=True)
    by_file = {s.meta["file"]: s.image for sp in SPLITS for s in ds.splits[sp].samples}
    for row in ds.rows:
        Image.fromarray(by_file[row["file"]]).save(out / row["file"], compress_level=1)
    with (out / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(ds.rows)
    for sp in SPLITS:
        names = [r["file"] for r in ds.rows if r["split"] == sp]
        (out / "splits" / f"{sp}.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    info = {**ds.params, "generator": "ferkit.data.synthetic", "ferkit_version": __version__,
            "label_space": labels.SYNTHFER.to_dict(), "columns": list(COLUMNS),
            "counts": {sp: len(ds.splits[sp]) for sp in SPLITS}}
    (out / "synthfer.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def contact_sheet(path: str | Path, identities: int = 6, size: int = 112, seed: int = 0,
                  nuisance_rows: int = 2) -> Path:
    """A labelled PNG grid: rows = identities, columns = the 7 expressions at intensity 0.9.

    The first rows are drawn frontal on a plain background; the last ``nuisance_rows`` rows add the
    random pose, lighting, noise and background that the dataset uses.
    """
    from PIL import Image, ImageDraw, ImageFont

    classes = labels.SYNTHFER.classes
    label_w, head_h = 70, 22
    sheet = Image.new("RGB", (label_w + size * len(classes), head_h + size * identities), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=13)
    centred = {"anchor": "mm"} if isinstance(font, ImageFont.FreeTypeFont) else {}   # bitmap fonts cannot anchor
    for e, name in enumerate(classes):
        draw.text((label_w + e * size + size // 2, head_h // 2), name, fill=(0, 0, 0), font=font, **centred)
    plain = {"yaw": 0.0, "roll": 0.0, "scale": 1.0, "shift_x": 0.0, "shift_y": 0.0, "light_angle": 0.8,
             "light_strength": 0.08, "brightness": 1.0, "noise_sigma": 0.0, "bg_r": 165.0, "bg_g": 175.0,
             "bg_b": 185.0, "bg_texture": "flat", "bg_texture_strength": 0.0}
    for i in range(identities):
        ident = sample_identity(seed, i)
        static = static_layers(ident)
        noisy = i >= identities - nuisance_rows
        draw.text((label_w // 2, head_h + i * size + size // 2), f"id {i}" + ("\n+nuis." if noisy else ""),
                  fill=(0, 0, 0), font=font, align="center", **centred)
        for e in range(len(classes)):
            r = np.random.default_rng([seed, 5, i, e])
            nz = {k: v[0].item() for k, v in sample_nuisance(r, 1).items()} if noisy else plain
            au = {k: 0.9 * PROTOTYPES[e].get(k, 0.0) for k in AU_NAMES}
            img = render_face(ident, au, nz, size, r, static)
            sheet.paste(Image.fromarray(img), (label_w + e * size, head_h + i * size))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
