"""Canonical expression labels and every dataset's label space, in one place.

Every dataset keeps its own label order (so numbers match the papers and the released code), and every
label space is a tuple of *canonical* names. Cross-dataset evaluation maps through these names; a class
absent from either side is reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferkit.errors import DataError

#: The canonical names: the 7 basic expressions and contempt.
CANONICAL: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")

#: Spellings found in datasets, folder names and papers, mapped to canonical names.
SYNONYMS: dict[str, str] = {
    "neutral": "neutral", "ne": "neutral", "neu": "neutral",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy", "hap": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise", "sur": "surprise",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "fe": "fear",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust", "dis": "disgust",
    "anger": "anger", "angry": "anger", "an": "anger", "ang": "anger",
    "contempt": "contempt", "co": "contempt", "con": "contempt",
}


@dataclass(frozen=True)
class LabelSpace:
    """An ordered set of expression classes: index i means ``classes[i]`` (a canonical name)."""

    name: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        bad = [c for c in self.classes if c not in CANONICAL]
        if bad:
            raise ValueError(f"label space {self.name!r} has non-canonical classes {bad}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        return self.classes.index(canonical_name(name))

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSpace:
        return cls(name=str(d["name"]), classes=tuple(d["classes"]))

    def mapping_to(self, other: LabelSpace) -> dict[int, int]:
        """Index map self -> other for the classes both share (by canonical name)."""
        return {i: other.classes.index(c) for i, c in enumerate(self.classes) if c in other.classes}


def canonical_name(name: str) -> str:
    """Canonical name for a dataset's spelling of a class ('Happiness' -> 'happy'); raises if unknown."""
    key = name.strip().lower().replace("-", "").replace("_", "")
    if key not in SYNONYMS:
        raise DataError(f"'{name}' is not an expression name ferkit knows; use one of {', '.join(CANONICAL)}.")
    return SYNONYMS[key]


# --- each dataset's label space, in the dataset's own order -------------------------------------------

#: SynthFER and the issue's 7 basic classes.
SYNTHFER = LabelSpace("synthfer", ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"))
#: RAF-DB basic, labels 1..7 in RAF order: Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral.
RAFDB = LabelSpace("rafdb", ("surprise", "fear", "disgust", "happy", "sad", "anger", "neutral"))
#: AffectNet expression codes 0..6 (7 basic) and 0..7 (with contempt); 8-10 are excluded.
AFFECTNET7 = LabelSpace("affectnet7", ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger"))
AFFECTNET8 = LabelSpace("affectnet8", AFFECTNET7.classes + ("contempt",))
#: CK+ Emotion codes 0..7: neutral, anger, contempt, disgust, fear, happy, sadness, surprise.
CKPLUS_CODES: tuple[str, ...] = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sad", "surprise")
CKPLUS7 = LabelSpace("ckplus7", CKPLUS_CODES[1:])          # the 7 classes DICE-FER uses (no neutral)
CKPLUS8 = LabelSpace("ckplus8", CKPLUS_CODES)              # with first frames as neutral
#: Oulu-CASIA, 6 classes, in the folder names' alphabetical order.
OULU = LabelSpace("oulu", ("anger", "disgust", "fear", "happy", "sad", "surprise"))
#: FER2013 emotion 0..6: Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral.
FER2013 = LabelSpace("fer2013", ("anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
#: FERPlus vote columns: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt.
FERPLUS = LabelSpace("ferplus", ("neutral", "happy", "surprise", "sad", "anger", "disgust", "fear", "contempt"))

LABEL_SPACES: dict[str, LabelSpace] = {
    ls.name: ls for ls in (SYNTHFER, RAFDB, AFFECTNET7, AFFECTNET8, CKPLUS7, CKPLUS8, OULU, FER2013, FERPLUS)
}

#: Original label -> index, per source format (the only place dataset label numbers are interpreted).
def rafdb_label(raw: int) -> int:
    """RAF-DB list label 1..7 -> RAFDB index 0..6."""
    if not 1 <= raw <= 7:
        raise ValueError(f"RAF-DB labels are 1..7, got {raw}")
    return raw - 1


def affectnet_label(raw: int, num_classes: int) -> int | None:
    """AffectNet expression code -> index, or None for the excluded codes (contempt in 7-class, 8-10)."""
    if raw < 0 or raw > 10:
        raise ValueError(f"AffectNet expression codes are 0..10, got {raw}")
    return raw if raw < num_classes else None


def ckplus_label(raw: float, include_neutral: bool) -> int:
    """CK+ Emotion file value (a float 0..7) -> CKPLUS7 or CKPLUS8 index."""
    code = int(round(raw))
    if abs(raw - code) > 1e-6 or not 0 <= code <= 7:
        raise ValueError(f"CK+ emotion codes are 0..7, got {raw}")
    if include_neutral:
        return code
    if code == 0:
        raise ValueError("CK+ emotion code 0 (neutral) is not in the 7-class label space")
    return code - 1


def fer2013_label(raw: int) -> int:
    if not 0 <= raw <= 6:
        raise ValueError(f"FER2013 emotion labels are 0..6, got {raw}")
    return raw


def get_label_space(name: str) -> LabelSpace:
    if name not in LABEL_SPACES:
        raise DataError(f"Unknown label space '{name}'; known: {', '.join(LABEL_SPACES)}.")
    return LABEL_SPACES[name]
