"""Aperture corrections: measure ratio fields on PSF stars and apply them to a catalogue.

Design (after LSST ``MeasureApCorrTask`` / ``ApplyApCorrTask``):

* for each correctable flux (``base_PsfFlux``, ``base_GaussianFlux``) take the sources
  flagged ``calib_psf_used`` whose reference flux (``base_CircularApertureFlux_12_0``,
  the calib-flux slot) and target flux are unflagged, finite and positive;
* fit ratio = ref / target over the image with a triangular 2-D Chebyshev polynomial of
  order 2 (lowered while N − n_coeffs < ``min_degrees_of_freedom``), four times with
  3σ clipping of the residuals;
* store it in an `ApCorrMap` under ``<name>_instFlux``, with a constant
  ``<name>_instFluxErr`` field equal to the final RMS; the map round-trips exactly
  through ``to_dict``/``from_dict``;
* `apply_ap_corr` multiplies flux and error by the field at each source and adds the
  ``_apCorr``, ``_apCorrErr`` and ``_flag_apCorr`` columns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from numpy.polynomial import chebyshev as cheb

from ._errors import ApertureCorrectionError

__all__ = [
    "ApCorrConfig",
    "ApCorrMap",
    "ChebyshevField",
    "apply_ap_corr",
    "measure_ap_corr",
]

_log = logging.getLogger(__name__)


def _terms(order: int) -> list[tuple[int, int]]:
    return [(i, d - i) for d in range(order + 1) for i in range(d, -1, -1)]


@dataclass(frozen=True, slots=True, eq=False)
class ChebyshevField:
    """A triangular 2-D Chebyshev polynomial over a pixel box (a constant when order 0).

    Attributes
    ----------
    bbox : tuple of float
        (x_min, y_min, x_max, y_max) mapped onto [-1, 1]², parent pixels.
    order : int
        Total degree.
    coefficients : tuple of float
        One per term (x-degree, y-degree) ordered by total degree.
    """

    bbox: tuple[float, float, float, float]
    order: int
    coefficients: tuple[float, ...]

    def _vander(self, x, y) -> np.ndarray:
        x0, y0, x1, y1 = self.bbox
        u = 2.0 * (np.asarray(x, dtype=np.float64) - x0) / max(x1 - x0, 1.0) - 1.0
        v = 2.0 * (np.asarray(y, dtype=np.float64) - y0) / max(y1 - y0, 1.0) - 1.0
        tu = cheb.chebvander(u, self.order)
        tv = cheb.chebvander(v, self.order)
        return np.stack([tu[..., i] * tv[..., j] for i, j in _terms(self.order)], axis=-1)

    def evaluate(self, x, y) -> np.ndarray:
        """Field value at parent pixel positions (arrays broadcast together)."""
        return self._vander(x, y) @ np.asarray(self.coefficients)

    def to_dict(self) -> dict:
        """Plain-python representation."""
        return {"bbox": list(self.bbox), "order": self.order,
                "coefficients": list(self.coefficients)}

    @classmethod
    def from_dict(cls, data: Mapping) -> ChebyshevField:
        """Rebuild a field written by `to_dict`."""
        return cls(tuple(float(v) for v in data["bbox"]), int(data["order"]),
                   tuple(float(v) for v in data["coefficients"]))

    @classmethod
    def fit(cls, x, y, z, bbox, order: int) -> ChebyshevField:
        """Least-squares fit of values ``z`` at positions (x, y)."""
        proto = cls(tuple(float(v) for v in bbox), order, (0.0,) * len(_terms(order)))
        sol, *_ = np.linalg.lstsq(proto._vander(x, y), np.asarray(z, dtype=np.float64),
                                  rcond=None)
        return cls(proto.bbox, order, tuple(float(v) for v in sol))


class ApCorrMap(dict):
    """Mapping ``"<algorithm>_instFlux"`` / ``"<algorithm>_instFluxErr"`` → `ChebyshevField`."""

    def evaluate(self, name: str, x, y) -> np.ndarray:
        """Value of field ``name`` at parent positions (x, y)."""
        return self[name].evaluate(x, y)

    def to_dict(self) -> dict:
        """Plain-python representation; `from_dict` restores it exactly."""
        return {name: field.to_dict() for name, field in sorted(self.items())}

    @classmethod
    def from_dict(cls, data: Mapping) -> ApCorrMap:
        """Rebuild a map written by `to_dict`."""
        return cls({name: ChebyshevField.from_dict(v) for name, v in data.items()})


@dataclass(slots=True)
class ApCorrConfig:
    """Options of `measure_ap_corr` (LSST defaults).

    Attributes
    ----------
    ref_flux : str
        Reference flux stem (``slot_CalibFlux`` = 12-px aperture).
    algorithms : tuple of str
        Flux stems to correct.
    selection_column : str
        Boolean column choosing the stars (``sourceSelector.flagged``).
    min_degrees_of_freedom : int
        Fit needs N − n_coeffs ≥ this.
    order : int
        Chebyshev total degree (``fitConfig.orderX``, triangular).
    num_iter, num_sigma_clip : int, float
        Clipping rounds and threshold.
    centroid_x, centroid_y : str
        Position columns, parent pixels.
    allow_failure : tuple of str
        Algorithms for which too few sources only logs a warning.
    """

    ref_flux: str = "base_CircularApertureFlux_12_0"
    algorithms: tuple[str, ...] = ("base_PsfFlux", "base_GaussianFlux")
    selection_column: str = "calib_psf_used"
    min_degrees_of_freedom: int = 1
    order: int = 2
    num_iter: int = 4
    num_sigma_clip: float = 3.0
    centroid_x: str = "base_SdssCentroid_x"
    centroid_y: str = "base_SdssCentroid_y"
    allow_failure: tuple[str, ...] = ()


def _col(table: Table, name: str, default) -> np.ndarray:
    if name in table.colnames:
        return np.asarray(table[name])
    return np.full(len(table), default)


def measure_ap_corr(
    table: Table,
    bbox: tuple[float, float, float, float],
    *,
    config: ApCorrConfig | None = None,
) -> ApCorrMap:
    """Fit aperture-correction fields on the selected stars.

    Parameters
    ----------
    table : astropy.table.Table
        Measured catalogue; an ``apcorr_<name>_used`` column is added for each algorithm.
    bbox : tuple of float
        (x_min, y_min, x_max, y_max) of the exposure, parent pixels.
    config : ApCorrConfig, optional
        Options; LSST defaults when None.

    Returns
    -------
    ApCorrMap
        Ratio fields ``<name>_instFlux`` and constant error fields ``<name>_instFluxErr``.

    Raises
    ------
    ApertureCorrectionError
        "Unable to measure aperture correction for required algorithm '<name>': only N
        sources, but require at least M."
    """
    config = config or ApCorrConfig()
    ap_map = ApCorrMap()
    x = np.asarray(table[config.centroid_x], dtype=np.float64)
    y = np.asarray(table[config.centroid_y], dtype=np.float64)
    ref = _col(table, f"{config.ref_flux}_instFlux", np.nan).astype(np.float64)
    ref_flag = _col(table, f"{config.ref_flux}_flag", False).astype(bool)
    selected = _col(table, config.selection_column, False).astype(bool)
    for name in config.algorithms:
        flux = _col(table, f"{name}_instFlux", np.nan).astype(np.float64)
        flag = _col(table, f"{name}_flag", False).astype(bool)
        good = (selected & np.isfinite(ref) & ~ref_flag & ~flag & np.isfinite(flux)
                & (flux > 0) & np.isfinite(x) & np.isfinite(y))
        need = config.min_degrees_of_freedom + 1
        table[f"apcorr_{name}_used"] = np.zeros(len(table), bool)
        if good.sum() < need:
            msg = (f"Unable to measure aperture correction for required algorithm '{name}': "
                   f"only {good.sum()} sources, but require at least {need}.")
            if name in config.allow_failure:
                _log.warning(msg)
                continue
            raise ApertureCorrectionError(msg)
        order = config.order
        while order > 0 and good.sum() - len(_terms(order)) < config.min_degrees_of_freedom:
            order -= 1
        ratio = ref / np.where(good, flux, 1.0)
        keep = good.copy()
        field = ChebyshevField.fit(x[keep], y[keep], ratio[keep], bbox, order)
        rms = 0.0
        for _ in range(config.num_iter):
            resid = ratio - field.evaluate(x, y)
            rms = float(np.sqrt(np.mean(resid[keep] ** 2)))
            new = good & (np.abs(resid) <= config.num_sigma_clip * rms)
            if new.sum() < len(_terms(order)) + config.min_degrees_of_freedom:
                break
            keep = new
            field = ChebyshevField.fit(x[keep], y[keep], ratio[keep], bbox, order)
        rms = float(np.sqrt(np.mean((ratio - field.evaluate(x, y))[keep] ** 2)))
        ap_map[f"{name}_instFlux"] = field
        ap_map[f"{name}_instFluxErr"] = ChebyshevField(field.bbox, 0, (rms,))
        table[f"apcorr_{name}_used"] = keep
        _log.info("Aperture correction for %s: %d stars, median %.4f, rms %.4f", name,
                  keep.sum(), np.median(ratio[keep]), rms)
    return ap_map


def apply_ap_corr(
    table: Table,
    ap_corr_map: ApCorrMap,
    *,
    centroid_x: str = "base_SdssCentroid_x",
    centroid_y: str = "base_SdssCentroid_y",
    flag_failures: bool = True,
) -> None:
    """Multiply the corrected fluxes (and errors) by the map, in place.

    Adds ``<name>_apCorr``, ``<name>_apCorrErr`` and ``<name>_flag_apCorr`` for each
    ``<name>_instFlux`` field of the map; with ``flag_failures`` a source whose
    correction is not finite also gets ``<name>_flag``.
    """
    x = np.asarray(table[centroid_x], dtype=np.float64)
    y = np.asarray(table[centroid_y], dtype=np.float64)
    for key in sorted(ap_corr_map):
        if not key.endswith("_instFlux"):
            continue
        name = key[: -len("_instFlux")]
        if key not in table.colnames:
            continue
        corr = ap_corr_map.evaluate(key, x, y)
        err_key = f"{name}_instFluxErr"
        corr_err = (ap_corr_map.evaluate(err_key, x, y) if err_key in ap_corr_map
                    else np.zeros_like(corr))
        bad = ~np.isfinite(corr) | (corr <= 0)
        table[f"{name}_apCorr"] = corr
        table[f"{name}_apCorrErr"] = corr_err
        table[f"{name}_flag_apCorr"] = bad
        table[key] = np.asarray(table[key], dtype=np.float64) * corr
        if err_key in table.colnames:
            table[err_key] = np.asarray(table[err_key], dtype=np.float64) * np.abs(corr)
        if flag_failures and f"{name}_flag" in table.colnames:
            table[f"{name}_flag"] = np.asarray(table[f"{name}_flag"], bool) | bad
