"""Captions for contrastive CLIP pretraining on faces, written from each image's class and metadata row.

Two styles (``ferkit pretrain clip --captions``): ``alt-text``, alt-text-like captions (the expression in
words with several templates, synonyms and intensity, and now and then hair, eyewear, head pose, light and
background), and ``expression``, which names the expression only ("a photo of a happy face." or the bare
class name). Columns a dataset lacks are left out of its captions.
"""

from __future__ import annotations

import numpy as np

#: per canonical class name: adjectives / participles a caption may use, and a noun
EXPRESSION_WORDS: dict[str, tuple[tuple[str, ...], str]] = {
    "neutral": (("neutral", "expressionless", "calm", "blank-faced"), "a neutral expression"),
    "happy": (("happy", "smiling", "joyful", "cheerful"), "happiness"),
    "sad": (("sad", "unhappy", "sorrowful", "downcast"), "sadness"),
    "surprise": (("surprised", "astonished", "amazed", "startled"), "surprise"),
    "fear": (("fearful", "scared", "frightened", "afraid"), "fear"),
    "disgust": (("disgusted", "repulsed", "grossed-out", "revolted"), "disgust"),
    "anger": (("angry", "furious", "annoyed", "mad"), "anger"),
    "contempt": (("contemptuous", "scornful", "sneering", "disdainful"), "contempt"),
}
#: caption templates ({adj}: an adjective, {noun}: the class noun, {name}: the bare class name, {who}: the
#: person with hair/eyewear, {extra}: pose, light, background clauses)
TEMPLATES = (
    "a photo of a {adj} person{extra}.",
    "a {adj} face{extra}.",
    "close-up portrait of {who}, looking {adj}{extra}.",
    "{who} with a {adj} expression{extra}.",
    "a face showing {noun}{extra}.",
    "{name}",
    "{name}, face, portrait, {adj}",
    "headshot of {who} who looks {adj}.",
    "an image of a {adj} facial expression on {who}{extra}.",
    "{adj} {person}{extra}",
)
#: how often a caption mentions each attribute the row holds besides the expression (face stock photos are
#: captioned by their expression first; hair, eyewear, pose, light and background come up now and then)
ATTRIBUTE_RATE = 0.3
HAIR_STYLE_WORDS = {"short": "short", "long": "long", "bob": "bob-cut", "buzz": "buzz-cut", "side": "side-parted",
                    "curly": "curly", "receding": "receding"}
GLASSES_WORDS = {"round": "round glasses", "rect": "rectangular glasses"}
BACKGROUND_WORDS = {"flat": "plain", "gradient": "gradient", "blotch": "blotchy", "stripes": "striped"}


def _num(meta: dict, key: str) -> float | None:
    v = meta.get(key)
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def _colour_name(meta: dict) -> str | None:
    """A colour word for the background colour columns (bg_r, bg_g, bg_b), or None without them."""
    import colorsys

    rgb = [_num(meta, k) for k in ("bg_r", "bg_g", "bg_b")]
    if any(v is None for v in rgb):
        return None
    h, s, v = colorsys.rgb_to_hsv(*(min(max(c / 255.0, 0.0), 1.0) for c in rgb))
    if s < 0.25:
        return "white" if v > 0.75 else "dark grey" if v < 0.4 else "grey"
    hues = ((0.04, "red"), (0.11, "orange"), (0.18, "yellow"), (0.45, "green"), (0.55, "teal"), (0.72, "blue"),
            (0.83, "purple"), (0.95, "pink"), (1.01, "red"))
    name = next(n for bound, n in hues if h < bound)
    return ("dark " if v < 0.45 else "light " if v > 0.8 and s < 0.45 else "") + name


def caption_for(class_name: str, meta: dict, rng: np.random.Generator, flipped: bool = False) -> str:
    """One alt-text-like caption of a face image from its class name and metadata row (random template and
    a random subset of the attributes the row holds; ``flipped``: the image was mirrored, so left/right swap)."""
    adjectives, noun = EXPRESSION_WORDS.get(class_name, ((class_name,), class_name))
    adj = str(rng.choice(adjectives)) if rng.random() < 0.5 else adjectives[0]     # the usual word half the time
    intensity = _num(meta, "intensity")
    if intensity is not None and class_name != "neutral" and rng.random() < 0.5:
        adj = ("slightly " if intensity < 0.72 else "very " if intensity > 0.9 else "") + adj
    person = str(rng.choice(("person", "face", "man or woman", "someone")))
    look = []
    hair_colour, hair_style = meta.get("hair_colour"), meta.get("hair_style")
    if isinstance(hair_colour, str) and rng.random() < ATTRIBUTE_RATE:
        style = HAIR_STYLE_WORDS.get(hair_style, "") if isinstance(hair_style, str) and rng.random() < 0.6 else ""
        look.append(f"with {(style + ' ') if style else ''}{hair_colour.replace('_', ' ')} hair")
    glasses = meta.get("glasses")
    if isinstance(glasses, str) and rng.random() < ATTRIBUTE_RATE:
        look.append(f"wearing {GLASSES_WORDS[glasses]}" if glasses in GLASSES_WORDS else "without glasses")
    who = "a person" + "".join(" " + w for w in rng.permutation(look)) if look else "a person"
    extra = []
    yaw = _num(meta, "yaw")
    if yaw is not None and rng.random() < ATTRIBUTE_RATE:
        if abs(yaw) < 4:
            extra.append("facing the camera")
        else:
            side = "left" if (yaw > 0) != flipped else "right"
            extra.append(f"with the head turned slightly to the {side}")
    brightness, light = _num(meta, "brightness"), _num(meta, "light_strength")
    if brightness is not None and rng.random() < ATTRIBUTE_RATE:
        extra.append("in dim light" if brightness < 0.92 else "in bright light" if brightness > 1.03
                     else "in soft light")
    elif light is not None and light > 0.15 and rng.random() < ATTRIBUTE_RATE:
        extra.append("with strong side lighting")
    bg, colour = meta.get("bg_texture"), _colour_name(meta)
    if (colour is not None or isinstance(bg, str)) and rng.random() < ATTRIBUTE_RATE:
        texture = BACKGROUND_WORDS.get(bg, "") if isinstance(bg, str) and rng.random() < 0.5 else ""
        words = " ".join(w for w in (texture, colour) if w)
        extra.append(f"on a {words} background" if words else "on a background")
    extra_text = "".join((", " if i else " ") + e for i, e in enumerate(extra))
    template = str(rng.choice(TEMPLATES))
    return template.format(adj=adj, noun=noun, name=class_name, who=who, person=person, extra=extra_text)


def expression_caption(class_name: str, meta: dict, rng: np.random.Generator, flipped: bool = False) -> str:
    """The ``expression`` caption style: "a photo of a {usual adjective} face." or, half the time, the bare
    class name (the metadata and the flip play no part)."""
    adjectives, _ = EXPRESSION_WORDS.get(class_name, ((class_name,), class_name))
    return f"a photo of a {adjectives[0]} face." if rng.random() < 0.5 else class_name


#: caption styles of ``--captions``: (class name, metadata row, rng, flipped) -> caption
CAPTION_STYLES = {"alt-text": caption_for, "expression": expression_caption}


def caption_words(text: str) -> list[str]:
    """The lower-case words of a caption or prompt (letters, digits, hyphens and apostrophes)."""
    import re

    return re.findall(r"[a-z0-9][a-z0-9'-]*", text.lower())


def caption_vocabulary(style: str, class_names: list[str], metas: list[dict], draws: int = 4, seed: int = 0) -> list[str]:
    """Every word the caption style ``style`` writes for these images (``draws`` captions per image, flipped
    and not, from a fixed seed: the ``expression`` style's two forms are both reached; alt-text's rarer
    attribute words nearly always): the words a CLIP pretrained on them can have learnt. Sorted."""
    rng = np.random.default_rng(seed)
    caption = CAPTION_STYLES[style]
    words: set[str] = set()
    for name, meta in zip(class_names, metas, strict=True):
        for k in range(draws):
            words.update(caption_words(caption(name, meta, rng, bool(k % 2))))
    return sorted(words)
