"""``core.composite``: a foreground over a background through a soft mask.

A photo's soft edges (hair, motion blur, the feathered rim of a matte) are mixtures:
``photo = alpha * subject + (1 - alpha) * old_background``. Laying the photo over a
new background with plain alpha keeps the old background's share in those pixels,
a fringe of the sharp wall's colour around the subject. With ``plate`` connected
(the old background as estimated behind the subject, e.g. by ``inpaint``), only
that share is swapped: ``photo + (1 - alpha) * (background - plate)``. The subject's
colour stays, the old background's colour leaves the edge (colour decontamination),
and where the new background equals the plate the photo comes back exactly.
"""

from __future__ import annotations

import weakref
from typing import Any

import cv2
import numpy as np

from focusgraph.graph.node import FrameContext, Node, NodeParams, Port, PortType
from focusgraph.nodes._units import check_same_size


def over(foreground: np.ndarray, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``foreground * alpha + background * (1 - alpha)`` for uint8 images and a float mask.

    ``foreground`` is straight (not premultiplied) colour, like a photo's pixels, so the
    weights sum to one at every pixel and no fringe darkens.
    """
    weight = np.ascontiguousarray(alpha, dtype=np.float32)
    return cv2.blendLinear(foreground, background, weight, 1.0 - weight)


def replace_background_direct(
    photo: np.ndarray, plate: np.ndarray, background: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """``photo + (1 - alpha) * (background - plate)`` over the whole frame (the reference formula).

    The change ``(background - plate) * (1 - alpha)`` is computed in float32, rounded
    to an integer (half to even) and added to ``photo`` with saturation (a NaN gives 0).
    :class:`BackgroundPlan` gives the same result bit for bit. Arguments as for
    :func:`replace_background`.
    """
    change = np.asarray(cv2.subtract(background, plate, dtype=cv2.CV_32F), np.float32)
    change *= (1.0 - np.asarray(alpha, np.float32))[..., None]
    # Rounded here, not by the add: OpenCV 4's mixed-type add rounded the float operand,
    # OpenCV 5 rounds the sum, which differs on ties (photo 1, change 1.5: 3, but 2.5 -> 2).
    np.rint(change, out=change)
    return cv2.add(photo, change, dtype=cv2.CV_8U)


class BackgroundPlan:
    """:func:`replace_background` for one ``(photo, plate, alpha)``, precomputed for many backgrounds.

    With ``w = 1 - alpha`` (float32) and ``change = (background - plate) * w`` rounded
    to an integer (as :func:`replace_background_direct` does), the pixels fall into
    three classes:

    * ``|w| <= 0.49 / 255`` (the subject, where a feathered matte is 1 or just below):
      ``|change| < 0.5`` for any background, which rounds to 0: the output is the photo;
    * ``|1 - w| <= 0.49 / 255`` and ``photo == plate`` in all channels (away from the
      subject): ``change`` rounds to ``background - plate``: the output is the background;
    * the rest (the soft edge, and wherever the plate differs from the photo outside the
      subject): the formula on those pixels only, gathered and scattered by flat index
      (one per pixel and channel) with the photo, plate and weight gathered beforehand.

    A frame is then a copy of the background, a masked copy of the photo and the
    formula on the band with the same float32 operations and rounding as
    :func:`replace_background_direct`, so the result is identical to it (not merely
    within a level). When the band is a large part of the frame (a gradient mask) the
    whole-frame formula is faster: the plan is then ``dense`` and
    :func:`replace_background` uses that formula. A plan holds no reference to its
    arrays, only what it gathered, so that the identity cache which keeps it can see
    them die.

    Parameters
    ----------
    photo, plate : ndarray
        (H, W, 3) uint8 images.
    alpha : ndarray
        (H, W) float subject alpha.
    """

    # Above this share of band pixels the whole-frame formula is the faster one.
    DENSE_SHARE = 0.25
    # |w| up to this leaves |change| < 0.5 for any 8-bit difference: it rounds to 0.
    NEGLIGIBLE = 0.49 / 255.0

    def __init__(self, photo: np.ndarray, plate: np.ndarray, alpha: np.ndarray) -> None:
        weight = 1.0 - np.asarray(alpha, np.float32)
        keep_photo = np.abs(weight) <= self.NEGLIGIBLE
        take_background = (np.abs(1.0 - weight) <= self.NEGLIGIBLE) & np.all(photo == plate, axis=2)
        band = ~(keep_photo | take_background)
        self.band_share = float(band.mean()) if band.size else 0.0
        self.finite = bool(np.isfinite(weight).all())  # then an unchanged background gives the photo
        self.dense = self.band_share > self.DENSE_SHARE
        self.keep_photo: np.ndarray | None = None
        if self.dense:
            band[:] = False
        elif keep_photo.any():
            self.keep_photo = keep_photo.view(np.uint8)
        pixels = np.flatnonzero(band)
        self.index = (pixels[:, None] * 3 + np.arange(3)).reshape(-1)  # flat (pixel, channel)
        self.band_photo = np.take(photo.reshape(-1), self.index).astype(np.float32)
        self.band_plate = np.take(plate.reshape(-1), self.index).astype(np.float32)
        self.band_weight = np.repeat(weight.reshape(-1)[pixels], 3)

    def apply(self, photo: np.ndarray, background: np.ndarray) -> np.ndarray:
        """``photo + (1 - alpha) * (background - plate)`` for a new ``background``, as uint8.

        Parameters
        ----------
        photo : ndarray
            The photo the plan was made for (its subject pixels are copied).
        background : ndarray
            (H, W, 3) uint8 new background.

        Raises
        ------
        ValueError
            If the plan is ``dense`` (use :func:`replace_background_direct`).
        """
        if self.dense:
            raise ValueError("a dense plan has no band: use replace_background_direct")
        out = np.array(background, np.uint8, order="C", copy=True)
        if self.keep_photo is not None:
            cv2.copyTo(photo, self.keep_photo, out)
        if self.index.size:
            change = np.take(background.reshape(-1), self.index).astype(np.float32)
            change -= self.band_plate
            change *= self.band_weight
            np.rint(change, out=change)
            change += self.band_photo
            np.clip(change, 0.0, 255.0, out=change)
            np.nan_to_num(change, copy=False, nan=0.0)  # OpenCV saturates a NaN to 0
            np.put(out.reshape(-1), self.index, change.astype(np.uint8))
        return out


class _PlanCache:
    """A few :class:`BackgroundPlan` keyed by the identity of their arrays (held weakly).

    A plan is built the second time the same ``(photo, plate, alpha)`` arrays come back
    (the scheduler hands a time-invariant input over as the same object every frame);
    inputs that change every frame (a moving layer) never pay for a plan. Unlike
    :func:`~focusgraph.nodes._memo.last_for`, several composites in one graph keep
    their own plans.
    """

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self.entries: list[tuple[tuple[weakref.ref[np.ndarray], ...], BackgroundPlan | None]] = []

    def get(self, photo: np.ndarray, plate: np.ndarray, alpha: np.ndarray) -> BackgroundPlan | None:
        """The plan of these arrays, or ``None`` the first time they are seen."""
        arrays = (photo, plate, alpha)
        self.entries = [entry for entry in self.entries if all(ref() is not None for ref in entry[0])]
        for index, (refs, plan) in enumerate(self.entries):
            if all(ref() is array for ref, array in zip(refs, arrays, strict=True)):
                if plan is None:
                    plan = BackgroundPlan(photo, plate, alpha)
                del self.entries[index]
                self.entries.insert(0, (refs, plan))
                return plan
        self.entries.insert(0, (tuple(weakref.ref(array) for array in arrays), None))
        del self.entries[self.size :]
        return None


_PLANS = _PlanCache()


def replace_background(
    photo: np.ndarray, plate: np.ndarray, background: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    """``photo + (1 - alpha) * (background - plate)``, rounded and clipped to uint8.

    Called again with the same ``photo``, ``plate`` and ``alpha`` objects (as in a
    render, where only the background changes), it reuses a :class:`BackgroundPlan`
    and works on the soft edge only; given the ``plate`` object itself as the background
    it returns ``photo``. The result is identical to :func:`replace_background_direct`
    either way.

    Parameters
    ----------
    photo : ndarray
        (H, W, 3) uint8 image whose pixels mix subject and ``plate`` by ``alpha``.
    plate : ndarray
        The background behind the subject, equal to ``photo`` where ``alpha`` is 0.
    background : ndarray
        The new background.
    alpha : ndarray
        (H, W) float subject alpha.
    """
    plan = _PLANS.get(photo, plate, alpha)
    if background is plate and plan is not None and plan.finite:
        return photo  # background - plate is 0 everywhere (a rack focus once it is sharp)
    if plan is None or plan.dense:
        return replace_background_direct(photo, plate, background, alpha)
    return plan.apply(photo, background)


class Composite(Node):
    """Place a foreground over a background using a mask as alpha."""

    type_name = "core.composite"
    description = "Foreground over background through a soft mask; optional colour decontamination."

    class Params(NodeParams):
        pass

    inputs = {
        "foreground": Port(PortType.IMAGE, "The layer in front (e.g. the sharp photo)."),
        "background": Port(PortType.IMAGE, "The layer behind (e.g. the blurred plate)."),
        "mask": Port(PortType.MASK, "Alpha of the foreground (1 = foreground)."),
        "plate": Port(
            PortType.IMAGE,
            "The background as it is in `foreground` (e.g. the inpainted plate, equal to the "
            "photo where the mask is 0): its colour is removed from soft edges.",
            optional=True,
        ),
    }
    outputs = {"image": Port(PortType.IMAGE, "The composite.")}

    def evaluate(self, params: Any, inputs: dict[str, Any], ctx: FrameContext) -> dict[str, Any]:
        foreground, background, mask = inputs["foreground"], inputs["background"], inputs["mask"]
        check_same_size("foreground", foreground, "background", background)
        check_same_size("foreground", foreground, "mask", mask)
        plate: np.ndarray | None = inputs.get("plate")
        if plate is None:
            return {"image": over(foreground, background, mask)}
        check_same_size("foreground", foreground, "plate", plate)
        return {"image": replace_background(foreground, plate, background, mask)}
