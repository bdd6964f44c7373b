"""Synthetic inspection surfaces in the spirit of DAGM 2007: textures with one defect, or none.

The same renderer feeds three things that must agree: the demo model's training
data (``scripts/make_dataset.py``, ``scripts/train_demo.py``), the demo clips
(``scripts/make_demo_clip.py``) and the agent's ``synthetic:`` camera source. So
it is deterministic given the generator, uses only numpy and OpenCV, and renders
a 640x480 frame in a few milliseconds.

Sizes are relative to ``min(width, height)`` so that a defect stays visible
after the frame is squeezed to the model's 96x96 input, whatever the resolution
or aspect ratio of the camera.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

LABELS: tuple[str, ...] = ("ok", "scratch", "spot", "crack", "hole")
DEFECT_LABELS: tuple[str, ...] = LABELS[1:]

_MIN_SIDE = 16  # below this a defect cannot be drawn with any meaning
_UNIFORM_TO_UNIT_STD = 1.0 / 73.9  # uint8 uniform noise centred on 127.5 has std ~73.9

Texture = Callable[[np.random.Generator, int, int, int], np.ndarray]
Defect = Callable[[np.random.Generator, np.ndarray, float], None]


def _f32(array: object) -> np.ndarray:
    """A float32 view of an OpenCV or numpy result (no copy when it already is one); keeps mypy precise."""
    return np.asarray(array, dtype=np.float32)


def _unit_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Zero-mean, unit-std white noise; uniform, because Gaussian draws cost 7x more at 640x480."""
    noise = np.frombuffer(rng.bytes(h * w), dtype=np.uint8).reshape(h, w).astype(np.float32)
    noise -= 127.5
    noise *= _UNIFORM_TO_UNIT_STD
    return noise


def _upsample(small: np.ndarray, w: int, h: int) -> np.ndarray:
    """Smooth enlargement: bicubic up to 1/8 of the frame, bilinear after (bicubic all the way costs 10x)."""
    mid = cv2.resize(
        small, (max(small.shape[1], w // 8), max(small.shape[0], h // 8)), interpolation=cv2.INTER_CUBIC
    )
    return _f32(cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: float) -> np.ndarray:
    """Low-frequency noise (about ``cells`` blobs across the short side), drawn small and enlarged."""
    m = min(h, w)
    ch, cw = max(2, round(cells * h / m)), max(2, round(cells * w / m))
    return _upsample(rng.standard_normal((ch, cw)).astype(np.float32), w, h)


def _grain(rng: np.random.Generator, h: int, w: int, size: float) -> np.ndarray:
    """Grain about ``size`` pixels across: drawn coarse and enlarged (cheaper than a blur)."""
    gh, gw = max(2, round(h / max(1.0, size))), max(2, round(w / max(1.0, size)))
    noise = _unit_noise(rng, gh, gw)
    return noise if (gh, gw) == (h, w) else _f32(cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR))


def _fine_noise(rng: np.random.Generator, h: int, w: int, m: int) -> np.ndarray:
    """Matte cast or painted surface: fine isotropic grain over a slow undulation."""
    grain = _grain(rng, h, w, float(rng.uniform(1.0, 3.0)) * m / 480)
    return 0.5 + float(rng.uniform(0.04, 0.1)) * grain + 0.03 * _smooth_noise(rng, h, w, rng.uniform(3, 8))


def _brushed(rng: np.random.Generator, h: int, w: int, m: int) -> np.ndarray:
    """Brushed metal: long one-pixel streaks along one direction (the caller rotates the surface)."""
    columns = max(2, round(rng.uniform(8, 40)))
    streaks = rng.standard_normal((h, columns)).astype(np.float32)
    mid = cv2.resize(streaks, (max(columns, w // 8), h), interpolation=cv2.INTER_CUBIC)
    brushed = _f32(cv2.resize(mid, (w, h), interpolation=cv2.INTER_LINEAR))
    return 0.5 + float(rng.uniform(0.04, 0.09)) * brushed + 0.02 * _smooth_noise(rng, h, w, 4)


def _woven(rng: np.random.Generator, h: int, w: int, m: int) -> np.ndarray:
    """Woven fabric: alternating warp and weft threads, built as one repeat and tiled."""
    period = max(3, round(m * float(rng.uniform(0.02, 0.05))))
    phase = (np.arange(2 * period, dtype=np.float32) + 0.5) * (math.pi / period)
    thread = np.abs(np.sin(phase))
    over = (np.arange(2 * period) // period) % 2 == 1
    warp, weft = thread[None, :], thread[:, None]
    repeat = np.where(over[None, :] ^ over[:, None], warp * (0.6 + 0.4 * weft), weft * (0.6 + 0.4 * warp))
    weave = np.tile(repeat, (h // (2 * period) + 1, w // (2 * period) + 1))[:h, :w]
    return _f32(0.35 + float(rng.uniform(0.15, 0.3)) * weave + 0.04 * _smooth_noise(rng, h, w, 6))


def _granular(rng: np.random.Generator, h: int, w: int, m: int) -> np.ndarray:
    """Sintered or sand-blasted surface: dense small grains, a few darker pits among them."""
    cell = max(1.0, m * float(rng.uniform(0.004, 0.012)))
    gh, gw = max(2, round(h / cell)), max(2, round(w / cell))
    grains = _f32(cv2.resize(rng.random((gh, gw), dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR))
    pits = (grains < 0.06).astype(np.float32)
    surface = 0.5 + float(rng.uniform(0.1, 0.2)) * (grains - 0.5) - float(rng.uniform(0.0, 0.1)) * pits
    return surface + 0.03 * _smooth_noise(rng, h, w, 5)


def _gradient(rng: np.random.Generator, h: int, w: int, m: int) -> np.ndarray:
    """Smooth moulded plastic or coated sheet: mostly low-frequency shading, little grain."""
    cloud = _smooth_noise(rng, h, w, rng.uniform(1.5, 4)) + 0.3 * _smooth_noise(rng, h, w, rng.uniform(8, 16))
    grain = _grain(rng, h, w, 1.5 * m / 480)
    return 0.5 + float(rng.uniform(0.04, 0.1)) * cloud + 0.015 * grain


_TEXTURES: tuple[tuple[Texture, bool], ...] = (  # (family, rotate it: only directional ones need to)
    (_fine_noise, False),
    (_brushed, True),
    (_woven, True),
    (_granular, False),
    (_gradient, False),
)


def _rotate(rng: np.random.Generator, surface: np.ndarray) -> np.ndarray:
    h, w = surface.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(0, 180)), 1.0)
    return _f32(
        cv2.warpAffine(surface, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    )


def _roi(surface: np.ndarray, pts: np.ndarray, pad: float) -> tuple[slice, slice, np.ndarray]:
    """The bounding box of ``pts`` (plus ``pad``) clipped to the surface, and the points relative to it.

    Defects are drawn into a small mask over this box instead of a full-frame one.
    """
    h, w = surface.shape
    x0, y0 = (np.floor(pts.min(axis=0) - pad)).astype(int)
    x1, y1 = (np.ceil(pts.max(axis=0) + pad)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, max(x1, x0 + 1)), min(h, max(y1, y0 + 1))
    return slice(y0, y1), slice(x0, x1), pts - np.array([x0, y0], dtype=np.float64)


def _draw_lines(surface: np.ndarray, lines: list[np.ndarray], thickness: int, amount: float) -> None:
    """Add ``amount`` (negative: darker) along anti-aliased polylines, slightly softened."""
    m = min(surface.shape)
    pad = thickness + 3.0 * m / 480 + 2
    ys, xs, _ = _roi(surface, np.concatenate(lines), pad)
    origin = np.array([xs.start, ys.start], dtype=np.float64)
    mask = np.zeros((ys.stop - ys.start, xs.stop - xs.start), dtype=np.float32)
    shifted = [np.round((line - origin) * 16).astype(np.int32) for line in lines]  # 4 fractional bits
    cv2.polylines(mask, shifted, False, 1.0, thickness, cv2.LINE_AA, shift=4)
    mask = _f32(cv2.GaussianBlur(mask, (0, 0), max(0.5, 0.8 * m / 480)))
    surface[ys, xs] += amount * mask


def _scratch(rng: np.random.Generator, surface: np.ndarray, severity: float) -> None:
    """A long, smooth, uniform line: a tool drag. Straight or gently bowed, bright or dark."""
    h, w = surface.shape
    m = min(h, w)
    length = m * rng.uniform(0.35, 0.7)
    angle = rng.uniform(0, math.pi)
    centre = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    bow = length * rng.uniform(-0.08, 0.08)
    t = np.linspace(-0.5, 0.5, 24)[:, None]
    pts = centre + t * length * direction + (1 - 4 * t**2) * bow * normal
    thickness = max(1, round(m * rng.uniform(0.008, 0.014)))
    sign = 1.0 if rng.random() < 0.5 else -1.0
    _draw_lines(surface, [pts], thickness, sign * severity * float(rng.uniform(0.25, 0.4)))


def _crack(rng: np.random.Generator, surface: np.ndarray, severity: float) -> None:
    """A jagged dark fracture that wanders and branches."""
    h, w = surface.shape
    m = min(h, w)
    step = m * rng.uniform(0.02, 0.035)
    n = int(rng.integers(10, 17))
    heading = rng.uniform(0, 2 * math.pi)
    turns = heading + np.cumsum(rng.uniform(-0.9, 0.9, n))
    steps = step * np.stack([np.cos(turns), np.sin(turns)], axis=1)
    start = np.array([rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h])
    trunk = start + np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    trunk -= trunk.mean(axis=0) - start  # keep the whole crack around the chosen place
    lines = [trunk]
    for _ in range(int(rng.integers(1, 4))):
        root = trunk[int(rng.integers(2, n - 2))]
        k = int(rng.integers(3, 6))
        branch_turns = heading + rng.choice([-1.0, 1.0]) * 1.0 + np.cumsum(rng.uniform(-0.9, 0.9, k))
        branch = root + np.cumsum(0.8 * step * np.stack([np.cos(branch_turns), np.sin(branch_turns)], 1), 0)
        lines.append(np.concatenate([root[None], branch]))
    thickness = max(1, round(m * rng.uniform(0.007, 0.012)))
    _draw_lines(surface, lines, thickness, -severity * float(rng.uniform(0.4, 0.6)))


def _blob_mask(
    rng: np.random.Generator, surface: np.ndarray, radius: float, soft: float
) -> tuple[slice, slice, np.ndarray]:
    """A filled ellipse around a random centre, blurred by ``soft`` (fraction of the radius)."""
    h, w = surface.shape
    centre = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    axes = np.array([radius, radius * rng.uniform(0.6, 1.0)])
    ys, xs, rel = _roi(surface, np.stack([centre - radius, centre + radius]), radius * (soft * 3 + 0.2) + 2)
    mask = np.zeros((ys.stop - ys.start, xs.stop - xs.start), dtype=np.float32)
    c = rel.mean(axis=0)
    cv2.ellipse(
        mask,
        (round(c[0] * 16), round(c[1] * 16)),
        (round(axes[0] * 16), round(axes[1] * 16)),
        float(rng.uniform(0, 180)),
        0,
        360,
        1.0,
        -1,
        cv2.LINE_AA,
        shift=4,
    )
    if soft > 0:
        mask = _f32(cv2.GaussianBlur(mask, (0, 0), max(0.5, soft * radius)))
    return ys, xs, mask


def _spot(rng: np.random.Generator, surface: np.ndarray, severity: float) -> None:
    """A soft-edged stain or inclusion: blotchy, fading into the surface."""
    m = min(surface.shape)
    radius = m * rng.uniform(0.04, 0.08)
    ys, xs, mask = _blob_mask(rng, surface, radius, soft=float(rng.uniform(0.15, 0.35)))
    sign = 1.0 if rng.random() < 0.3 else -1.0
    surface[ys, xs] += sign * severity * float(rng.uniform(0.22, 0.38)) * mask


def _hole(rng: np.random.Generator, surface: np.ndarray, severity: float) -> None:
    """A sharp-edged pit or drilled hole: very dark inside, with a lit rim on one side."""
    m = min(surface.shape)
    radius = m * rng.uniform(0.035, 0.065)
    ys, xs, mask = _blob_mask(rng, surface, radius, soft=0.0)
    patch = surface[ys, xs]
    dark = float(rng.uniform(0.02, 0.12))
    patch += severity * mask * (dark - patch)
    rim = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)), iterations=max(1, m // 160))
    light = np.linspace(-1.0, 1.0, rim.shape[1], dtype=np.float32)[None, :] * rng.choice([-1.0, 1.0])
    patch += severity * 0.25 * np.clip(rim - mask, 0, 1) * np.clip(light, 0, 1)


_DEFECTS: dict[str, Defect] = {"scratch": _scratch, "spot": _spot, "crack": _crack, "hole": _hole}


def _lighting(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Exposure and uneven lighting as a per-pixel gain and offset: ``lit = surface * gain + offset``.

    Brightness, contrast, a linear gradient and vignetting are all smooth, so the
    two fields are computed on a coarse grid and upsampled; applying them then
    costs two passes over the frame instead of five.
    """
    brightness, contrast = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.7, 1.4))
    gy, gx = np.mgrid[-1:1:24j, -1:1:32j].astype(np.float32)
    slope = rng.uniform(-0.25, 0.25, 2)
    vignette = rng.uniform(0.0, 0.35)
    field = (1.0 + slope[0] * gx + slope[1] * gy - vignette * 0.5 * (gx**2 + gy**2)).astype(np.float32)
    gain = cv2.resize(contrast * field, (w, h), interpolation=cv2.INTER_LINEAR)
    offset = cv2.resize((brightness - 0.5 * contrast) * field, (w, h), interpolation=cv2.INTER_LINEAR)
    return _f32(gain), _f32(offset)


def _to_bgr(rng: np.random.Generator, gray: np.ndarray) -> np.ndarray:
    """Slightly tinted colour: metal is near grey, coatings and fabrics are not."""
    tint = 1.0 + rng.uniform(-0.12, 0.12, 3)
    np.maximum(gray, 0.0, out=gray)  # convertScaleAbs saturates at 255 but would mirror negatives
    channels = [cv2.convertScaleAbs(gray, alpha=255.0 * float(t)) for t in tint]
    return np.asarray(cv2.merge(channels), dtype=np.uint8)


def render_part(
    rng: np.random.Generator, label: str, width: int, height: int, *, severity: float = 1.0
) -> np.ndarray:
    """Render one inspection frame (BGR uint8, ``height`` x ``width``) showing a ``label`` defect.

    ``severity`` scales the defect's contrast: 1 is a plainly visible defect, ~0.3
    a borderline one (used by demo clips to make the model unsure). The random
    draws do not depend on it, so the same generator state gives the same part
    and defect at any severity.
    """
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    if width < _MIN_SIDE or height < _MIN_SIDE:
        raise ValueError(f"frame {width}x{height} too small; both sides must be >= {_MIN_SIDE}")
    m = min(width, height)
    texture, directional = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    surface = texture(rng, height, width, m)
    if directional:
        surface = _rotate(rng, surface)
    if label != "ok":
        _DEFECTS[label](rng, surface, severity)
    gain, offset = _lighting(rng, height, width)
    lit = surface * gain
    lit += offset
    blur = float(rng.uniform(0.0, 1.5)) * m / 480
    if blur > 0.3:
        lit = _f32(cv2.GaussianBlur(lit, (0, 0), blur))
    noise = float(rng.uniform(0.004, 0.025)) * _UNIFORM_TO_UNIT_STD  # sensor noise, std 0.4 % .. 2.5 %
    raw = np.frombuffer(rng.bytes(height * width), dtype=np.uint8).reshape(height, width)
    lit = _f32(cv2.scaleAdd(raw.astype(np.float32), noise, lit - np.float32(127.5 * noise)))
    return _to_bgr(rng, lit)
