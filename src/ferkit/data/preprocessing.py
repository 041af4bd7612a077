"""What a model expects of its input, recorded in every checkpoint so inference repeats it exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    size: int = 112                          # square side in pixels after alignment/resizing
    channels: int = 1                        # 1 = grayscale, 3 = RGB
    mean: tuple[float, ...] = (0.5,)         # per-channel mean subtracted after scaling to [0, 1]
    std: tuple[float, ...] = (0.5,)          # per-channel std divided
    whitening: str = "none"                  # none | per_image (standardise each image to mean 0, std 1)
    align: str = "mtcnn5"                    # mtcnn5 (detect + 5-point similarity warp) | box (detector box
                                             #   crop, widened by box_margin) | square_box (the box made square
                                             #   first) | none (use as is)
    template: str = "default"                # alignment template name (ferkit.data.faces.TEMPLATES)
    resize: str = "bilinear"                 # resize interpolation: bilinear | bicubic (antialiased) |
                                             #   cv2_linear (cv2.resize INTER_LINEAR, as OpenCV-based code)
    channel_order: str = "rgb"               # rgb | bgr: the order of 3 channels the model was trained on
    divide_by: float = 255.0                 # uint8 values are divided by this before mean/std (1 = raw 0..255)
    box_margin: float = 0.0                  # align "box": margin added on each side, as a fraction of the side

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        d = dict(d)
        for k in ("mean", "std"):
            if k in d:
                d[k] = tuple(float(x) for x in d[k])
        return cls(**d)
