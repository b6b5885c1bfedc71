"""The extended PSF: stacked bright-star models, one default and one per focal-plane region.

`ExtendedPsf` is the data model of `MeasureExtendedPsfTask`'s output (LSST's ``ExtendedPsf``,
science.md §4.1): an optional default model, named focal-plane region models each with the
detectors they cover, and the detector → region map derived from them. Calling it with a
detector returns that detector's regional model; without one (or without regions) it returns
the default. Region names are upper-cased, as LSST stores them.

Each model is an `~imaging.exposure.Exposure` on the stamp grid (image and mask, ``NO_DATA``
where no stamp contributed). Alongside LSST's fields each model may carry a
`~imaging.extended_psf_profile.ProfileFit` (Moffat core + power-law wing) and the number of
stamps stacked; ``metadata`` records how the model was made (statistic, normalization mode).

Storage: `imaging.extended_psf_io` (FITS as §4.1, and zarr); both round-trip exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .exposure import Exposure
from .extended_psf_profile import ProfileFit

__all__ = ["DEFAULT_REGION", "ExtendedPsf", "ExtendedPsfError", "RegionalExtendedPsf"]

DEFAULT_REGION = "DEFAULT"
"""Name of the default (whole focal plane) model in files and `ExtendedPsf.regions`."""


class ExtendedPsfError(LookupError):
    """A model is asked for that the `ExtendedPsf` does not hold (names region and detector)."""


@dataclass(eq=False)
class RegionalExtendedPsf:
    """One stacked model and where it applies.

    Parameters
    ----------
    image : `~imaging.exposure.Exposure`
        The model (image and mask) on the stamp grid.
    detector_list : `list` [`int`]
        Detectors of the region (empty for the default model).
    n_stamps : `int`
        Stamps stacked into the model.
    profile : `~imaging.extended_psf_profile.ProfileFit`, optional
        Fitted azimuthal profile.
    """

    image: Exposure
    detector_list: list[int] = field(default_factory=list)
    n_stamps: int = 0
    profile: ProfileFit | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.image, Exposure):
            raise TypeError(
                f"an extended PSF model must be an Exposure, got {type(self.image).__name__}"
            )
        self.detector_list = [int(d) for d in self.detector_list]
        self.n_stamps = int(self.n_stamps)


class ExtendedPsf:
    """Extended PSF models of one band: a default model and per-region models.

    Parameters
    ----------
    default_extended_psf : `~imaging.exposure.Exposure`, optional
        The model used when no detector is given or there are no regions.
    metadata : `dict`, optional
        How the models were made (simple values; keys are upper-cased).
    """

    def __init__(
        self,
        default_extended_psf: Exposure | RegionalExtendedPsf | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.default: RegionalExtendedPsf | None = None
        if default_extended_psf is not None:
            self.set_default(default_extended_psf)
        self.focal_plane_regions: dict[str, RegionalExtendedPsf] = {}
        self.detectors_focal_plane_regions: dict[int, str] = {}
        self.metadata: dict[str, Any] = {str(k).upper(): v for k, v in (metadata or {}).items()}

    # -- construction -----------------------------------------------------------------------------

    def set_default(self, model: Exposure | RegionalExtendedPsf) -> None:
        """Set the default model."""
        if not isinstance(model, RegionalExtendedPsf):
            model = RegionalExtendedPsf(model)
        self.default = model

    def add_regional_extended_psf(
        self,
        extended_psf_image: Exposure | RegionalExtendedPsf,
        region_name: str,
        detector_list: list[int] | None = None,
    ) -> None:
        """Add the model of one focal-plane region (LSST's method name).

        Raises
        ------
        ValueError
            If the region exists already, is named ``DEFAULT``, or a detector already belongs
            to another region.
        """
        name = str(region_name).upper()
        if name == DEFAULT_REGION:
            raise ValueError(f"region name {region_name!r} is reserved for the default model")
        if name in self.focal_plane_regions:
            raise ValueError(f"extended PSF region {name!r} is already set")
        if isinstance(extended_psf_image, RegionalExtendedPsf):
            regional = extended_psf_image
            if detector_list is not None:
                regional.detector_list = [int(d) for d in detector_list]
        else:
            regional = RegionalExtendedPsf(extended_psf_image, list(detector_list or []))
        for detector in regional.detector_list:
            other = self.detectors_focal_plane_regions.get(detector)
            if other is not None:
                raise ValueError(
                    f"detector {detector} is in region {other!r}; it cannot also be in {name!r}"
                )
        self.focal_plane_regions[name] = regional
        for detector in regional.detector_list:
            self.detectors_focal_plane_regions[detector] = name

    # -- access -----------------------------------------------------------------------------------

    def __call__(self, detector: int | None = None) -> Exposure:
        """Return the model of ``detector`` (the default with `None` or without regions).

        Raises
        ------
        ExtendedPsfError
            If the model asked for is not there (no default; detector in no region).
        """
        return self.model_for(detector).image

    def model_for(self, detector: int | None = None) -> RegionalExtendedPsf:
        """Return the `RegionalExtendedPsf` that `__call__` would use."""
        if detector is None or not self.focal_plane_regions:
            if self.default is None:
                raise ExtendedPsfError(
                    "this ExtendedPsf has no default model"
                    + (
                        f"; ask for a detector of regions {sorted(self.focal_plane_regions)}"
                        if self.focal_plane_regions
                        else ""
                    )
                )
            return self.default
        region = self.detectors_focal_plane_regions.get(int(detector))
        if region is None:
            raise ExtendedPsfError(
                f"detector {detector} is in no extended PSF region "
                f"(regions: {sorted(self.focal_plane_regions)})"
            )
        return self.focal_plane_regions[region]

    def get_default_extended_psf(self) -> Exposure | None:
        """Return the default model, or `None`."""
        return None if self.default is None else self.default.image

    def get_regional_extended_psf(
        self, region_name: str | None = None, detector: int | None = None
    ) -> Exposure:
        """Return the model of a region, by name or by one of its detectors.

        Raises
        ------
        ValueError
            If both or neither of ``region_name`` and ``detector`` are given.
        ExtendedPsfError
            If there is no such region.
        """
        if (region_name is None) == (detector is None):
            raise ValueError("give exactly one of region_name and detector")
        if detector is not None:
            return self.model_for(detector).image
        name = str(region_name).upper()
        if name not in self.focal_plane_regions:
            raise ExtendedPsfError(
                f"no extended PSF region {name!r} (regions: {sorted(self.focal_plane_regions)})"
            )
        return self.focal_plane_regions[name].image

    @property
    def regions(self) -> dict[str, RegionalExtendedPsf]:
        """Every model by name, the default (if any) first as ``DEFAULT``."""
        out: dict[str, RegionalExtendedPsf] = {}
        if self.default is not None:
            out[DEFAULT_REGION] = self.default
        out.update(self.focal_plane_regions)
        return out

    def __len__(self) -> int:
        """Return the number of region models (as LSST, the default is not counted)."""
        return len(self.focal_plane_regions)

    def __repr__(self) -> str:
        return (
            f"ExtendedPsf(default={'yes' if self.default is not None else 'no'}, "
            f"regions={sorted(self.focal_plane_regions)})"
        )

    def equals(self, other: object) -> bool:
        """Exact equality of everything stored (pixels bit for bit, NaN equal to NaN)."""
        if not isinstance(other, ExtendedPsf) or self.metadata != other.metadata:
            return False
        mine, theirs = self.regions, other.regions
        if list(mine) != list(theirs):
            return False
        for name, a in mine.items():
            b = theirs[name]
            if a.detector_list != b.detector_list or a.n_stamps != b.n_stamps:
                return False
            if (a.profile is None) != (b.profile is None):
                return False
            if a.profile is not None and a.profile.to_dict() != b.profile.to_dict():
                return False
            ia, ib = a.image, b.image
            if ia.xy0 != ib.xy0 or not np.array_equal(ia.image, ib.image, equal_nan=True):
                return False
            if ia.mask != ib.mask:
                return False
        return True


def simple_value(value: Any) -> Any:
    """Return ``value`` as a plain `str`, `int`, `float` or `bool` (metadata values).

    Raises
    ------
    TypeError
        For anything else.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"extended PSF metadata values must be finite, got {value!r}")
    if not isinstance(value, str | int | float | bool):
        raise TypeError(f"extended PSF metadata values must be simple scalars, got {value!r}")
    return value
