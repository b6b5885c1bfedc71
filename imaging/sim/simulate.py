"""Simulate one detector of one visit: sky, stars, galaxies, noise and detector artifacts.

`simulate_detector` is a pure function of ``(camera, visit, detector_id, seed, sky, options)``:
random numbers come from generators seeded by ``(seed, visit.id, detector_id, stream)`` and the
sky from `~imaging.sim.sky` tiles seeded by ``seed``, so detectors simulate independently (in
parallel) and reproducibly. Steps, all in electrons until the last:

1. WCS: TAN-SIP from the camera geometry (`~imaging.sim.wcs`); GalSim draws through its local
   Jacobian at each source, so rotated and distorted detectors get the right PSF orientation.
2. Sky: ``level (1 + gx X + gy Y + q (X² + Y²))`` over the focal plane (``X = fx / R``), level
   from the band's sky brightness; gradient coefficients drawn per visit.
3. Stars (refcat, proper motions applied) drawn with the Moffat core convolved with the pixel;
   stars whose peak reaches half the full well also get the power-law halo (``is_bright``).
   Galaxies (exponential or de Vaucouleurs, sheared) are convolved with the same core PSF.
4. Poisson noise; cosmic rays (`~imaging.sim.artifacts.add_cosmic_rays`); bleed along columns;
   read noise; conversion to ADU and clipping at ``saturation`` (SAT mask); bad columns (BAD).
5. Variance plane ``max(image, 0) / gain + (read_noise / gain)²``; no PSF attached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import galsim
import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..exposure import DetectorInfo, Exposure, VisitInfo
from ..mask import Mask
from ..refcat import propagate_positions
from .artifacts import add_bad_columns, add_cosmic_rays, bleed_saturation
from .camera import Camera
from .psf_field import PsfField, TruthPsf
from .sky import COLOUR_TERMS, SkyModel, sources_in_cone
from .truth import TRUTH_SCHEMA, DetectorTruth
from .wcs import make_detector_wcs

__all__ = ["DEFAULT_SKY_MAGS", "SimOptions", "SimulatedDetector", "Visit", "simulate_detector"]

DEFAULT_SKY_MAGS: dict[str, float] = {
    "u": 22.9,
    "g": 22.3,
    "r": 21.2,
    "i": 20.5,
    "z": 19.6,
    "y": 18.6,
}
"""Dark-sky brightness per band (mag / arcsec²)."""

_STREAM_NOISE, _STREAM_CR, _STREAM_BAD, _STREAM_READ = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Visit:
    """One pointing of the simulated camera.

    Parameters
    ----------
    id : `int`
        Visit number.
    band : `str`
        Band (``u g r i z y``).
    ra, dec : `float`
        Boresight (deg).
    rotation_angle : `float`
        Sky rotation angle (deg, focal-plane +y east of north).
    exposure_time : `float`
        Seconds.
    mjd : `float`
        Start time (MJD, TAI).
    seeing : `float`
        Atmospheric FWHM at the boresight (arcsec).
    sky_mag : `float`, optional
        Sky brightness (mag/arcsec²); `None` takes `DEFAULT_SKY_MAGS`.
    """

    id: int
    band: str
    ra: float
    dec: float
    rotation_angle: float = 0.0
    exposure_time: float = 30.0
    mjd: float = 60310.1
    seeing: float = 0.7
    sky_mag: float | None = None

    def to_visit_info(self, camera: Camera) -> VisitInfo:
        """Return the exposure's `~imaging.exposure.VisitInfo`."""
        return VisitInfo(
            id=self.id,
            band=self.band,
            physical_filter=f"{self.band}_sim",
            exposure_time=self.exposure_time,
            mjd=self.mjd,
            boresight_ra=self.ra,
            boresight_dec=self.dec,
            rotation_angle=self.rotation_angle,
            instrument=camera.name,
        )


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Detector-effect switches and rates.

    Parameters
    ----------
    cr_rate : `float`
        Cosmic rays per cm² per second.
    cr_threshold : `float`
        CR truth mask: deposit above this many times the local noise sigma.
    n_bad_columns : `int`
        Bad columns per detector.
    sky_gradient : `float`
        Amplitude of the linear sky gradient across the field (fraction of the level).
    halo_threshold : `float`
        Stars whose noise-free peak exceeds this fraction of the full well get the halo; 0 gives
        every star the same extended profile (core plus halo, the halo drawn out to where it
        falls below 0.001 e-/px, at most 400 px).
    galaxies : `bool`
        Draw galaxies.
    interpolate_defects : `bool`
        Interpolate over the bad columns (as ISR does for ``postISRCCD``); they stay BAD and
        become INTRP in the mask.
    """

    cr_rate: float = 1.0
    cr_threshold: float = 3.0
    n_bad_columns: int = 2
    sky_gradient: float = 0.05
    halo_threshold: float = 0.5
    galaxies: bool = True
    interpolate_defects: bool = True


@dataclass(frozen=True, slots=True)
class SimulatedDetector:
    """A simulated exposure and its truth."""

    exposure: Exposure
    truth: DetectorTruth


def _rng(seed: int, visit: Visit, detector_id: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, visit.id, detector_id, stream])


def _background(
    det: DetectorInfo, camera: Camera, visit: Visit, seed: int, level: float, amp: float
) -> tuple[np.ndarray, dict[str, float]]:
    rng = np.random.default_rng([seed, visit.id, 0xB6])  # per visit: shared by all detectors
    gx, gy = rng.uniform(-amp, amp, 2)
    q = rng.uniform(0.0, amp / 2)
    b = det.bbox
    radius = camera.field_radius
    # Focal-plane coordinates are affine in (x, y): X = ax[x] + ay[y], Y = bx[x] + by[y], so the
    # polynomial separates into row and column terms plus one outer product.
    cx, cy = b.center
    fx_c, fy_c = det.pixel_to_focal_plane(cx, cy)
    fx_x, fy_x = det.pixel_to_focal_plane(np.arange(b.x0, b.x1), cy)
    fx_y, fy_y = det.pixel_to_focal_plane(cx, np.arange(b.y0, b.y1))
    ax, bx = fx_x / radius, fy_x / radius
    ay, by = (fx_y - fx_c) / radius, (fy_y - fy_c) / radius
    row = 1.0 + gx * ax + gy * bx + q * (ax * ax + bx * bx)
    col = gx * ay + gy * by + q * (ay * ay + by * by)
    sky = np.add.outer(col, row)
    sky += 2.0 * q * (np.multiply.outer(ay, ax) + np.multiply.outer(by, bx))
    sky *= level
    return sky, {"level": level, "gx": float(gx), "gy": float(gy), "q": float(q)}


def _stamp_radius_core(flux: float, fwhm_pix: float, beta: float) -> int:
    rd = fwhm_pix / (2.0 * math.sqrt(2 ** (1 / beta) - 1))
    sb0 = max(flux, 1.0) * (beta - 1) / (math.pi * rd * rd)
    r = rd * (10.0 * sb0) ** (1 / (2 * beta))  # surface brightness falls to 0.1 e-
    return int(np.clip(math.ceil(r), math.ceil(3 * fwhm_pix), 150))


def _halo_radius(flux: float, fwhm_pix: float, psf: PsfField) -> int:
    """Radius where the halo's surface brightness falls to 0.001 e- per pixel (16..400 px)."""
    beta = psf.halo_beta
    rd = fwhm_pix / (2.0 * math.sqrt(2 ** (1 / beta) - 1))
    sb0 = max(flux, 1e-9) * (beta - 1) / (math.pi * rd * rd)
    ratio = max(sb0 / 1e-3, 1.0)
    r = rd * math.sqrt(max(ratio ** (1 / beta) - 1.0, 0.0))
    return int(np.clip(math.ceil(r), 16, 400))


def _peak_fraction(fwhm_pix: float, beta: float) -> float:
    """Central-pixel flux fraction of a unit-flux Moffat (no pixel smoothing: an upper bound)."""
    rd = fwhm_pix / (2.0 * math.sqrt(2 ** (1 / beta) - 1))
    return (beta - 1) / (math.pi * rd * rd)


def _add_stamp(target: np.ndarray, stamp: galsim.Image | None) -> None:
    """Add a GalSim stamp (1-based bounds) into a 0-based numpy image, clipped."""
    if stamp is None:
        return
    b = stamp.bounds
    ny, nx = target.shape
    x0, x1 = max(b.xmin - 1, 0), min(b.xmax, nx)
    y0, y1 = max(b.ymin - 1, 0), min(b.ymax, ny)
    if x1 <= x0 or y1 <= y0:
        return
    sx, sy = x0 - (b.xmin - 1), y0 - (b.ymin - 1)
    target[y0:y1, x0:x1] += stamp.array[sy : sy + (y1 - y0), sx : sx + (x1 - x0)]


def _draw(
    profile: galsim.GSObject,
    local: galsim.JacobianWCS,
    x: float,
    y: float,
    radius: int,
    clip: galsim.BoundsI,
    method: str = "auto",
) -> galsim.Image | None:
    """Draw ``profile`` centred at 0-based ``(x, y)`` on the part of its stamp inside ``clip``."""
    ix, iy = int(round(x)), int(round(y))
    bounds = galsim.BoundsI(ix - radius + 1, ix + radius + 1, iy - radius + 1, iy + radius + 1)
    bounds = bounds & clip
    if not bounds.isDefined():
        return None
    stamp = galsim.ImageD(bounds)
    profile.drawImage(image=stamp, wcs=local, center=galsim.PositionD(x + 1, y + 1), method=method)
    return stamp


def _interpolate_columns(image: np.ndarray, bad: np.ndarray) -> None:
    """Replace bad pixels by the mean of the nearest good pixels in their row (as ISR does)."""
    ny, nx = image.shape
    ys, xs = np.nonzero(bad)
    values = np.empty(ys.size, dtype=np.float64)
    for k, (y, x) in enumerate(zip(ys, xs, strict=True)):
        left = x - 1
        while left >= 0 and bad[y, left]:
            left -= 1
        right = x + 1
        while right < nx and bad[y, right]:
            right += 1
        neighbours = [image[y, c] for c in (left, right) if 0 <= c < nx]
        values[k] = float(np.mean(neighbours)) if neighbours else float(np.median(image))
    image[ys, xs] = values


def simulate_detector(
    camera: Camera,
    visit: Visit,
    detector_id: int,
    *,
    seed: int,
    sky: SkyModel | None = None,
    options: SimOptions | None = None,
) -> SimulatedDetector:
    """Simulate detector ``detector_id`` of ``camera`` for ``visit``.

    Parameters
    ----------
    camera : `~imaging.sim.camera.Camera`
        The camera.
    visit : `Visit`
        Pointing, band, exposure time and seeing.
    detector_id : `int`
        Which detector.
    seed : `int`
        Master seed; the result is a deterministic function of ``(seed, visit, detector)``.
    sky : `~imaging.sim.sky.SkyModel`, optional
        Source densities; `None` means the defaults.
    options : `SimOptions`, optional
        Detector effects; `None` means the defaults.

    Returns
    -------
    sim : `SimulatedDetector`
        The exposure (ADU, mask with SAT and BAD, variance, WCS, detector and visit info; no PSF)
        and its `~imaging.sim.truth.DetectorTruth`.
    """
    sky = SkyModel() if sky is None else sky
    options = SimOptions() if options is None else options
    det = camera.detector(detector_id)
    ny, nx = det.bbox.shape
    t = visit.exposure_time
    zp_e = camera.zero_point(visit.band) + 2.5 * math.log10(t)  # mag of 1 e- in the exposure
    full_well = det.saturation * det.gain

    wcs = make_detector_wcs(
        detector=det,
        boresight=(visit.ra, visit.dec),
        rotation_angle=visit.rotation_angle,
        pixel_scale=camera.pixel_scale,
        distortion_k=camera.distortion_k,
    )
    truth_psf = TruthPsf(
        camera.psf, seeing=visit.seeing, field_radius=camera.field_radius, detector=det, wcs=wcs
    )
    sky_mag = DEFAULT_SKY_MAGS.get(visit.band, 21.0) if visit.sky_mag is None else visit.sky_mag
    level = 10 ** (-0.4 * (sky_mag - zp_e)) * camera.pixel_scale**2
    background, bg_params = _background(det, camera, visit, seed, level, options.sky_gradient)

    # -- sources ---------------------------------------------------------------------------------
    margin = 400
    cx, cy = det.bbox.center
    center = wcs.pixel_to_world_values(cx, cy)
    radius = (math.hypot(nx, ny) / 2 + margin) * camera.pixel_scale * 1.05 / 3600.0
    center = (float(center[0]), float(center[1]))
    stars = sources_in_cone(center, radius, seed=seed, sky=sky, kind="star")
    epoch = 2000.0 + (visit.mjd - 51544.5) / 365.25
    star_ra, star_dec = propagate_positions(stars, epoch) if len(stars) else ([], [])
    colour_term = COLOUR_TERMS.get(visit.band, 0.0)
    rows = []
    for i in range(len(stars)):
        mag = float(stars["phot_g_mean_mag"][i]) + colour_term * (float(stars["colour"][i]) - 0.8)
        rows.append((int(stars["id"][i]), float(star_ra[i]), float(star_dec[i]), mag, False, 0, 0))
    if options.galaxies:
        gals = sources_in_cone(center, radius, seed=seed, sky=sky, kind="galaxy")
        for g in gals:
            rows.append(
                (int(g["id"]), float(g["ra"]), float(g["dec"]), float(g["mag"]), True, g, 0)
            )
    electrons = np.zeros((ny, nx))
    clip = galsim.BoundsI(1, nx, 1, ny)
    table_rows = []
    if rows:
        ra = np.array([r[1] for r in rows])
        dec = np.array([r[2] for r in rows])
        px, py = wcs.all_world2pix(ra, dec, 0, quiet=True)
    for k, (sid, ra_k, dec_k, mag, is_gal, gal, _) in enumerate(rows):
        x, y = float(px[k]), float(py[k])
        if not det.bbox.dilated(margin).contains((x, y)):
            continue
        flux = 10 ** (-0.4 * (mag - zp_e))
        profile, local, fwhm = truth_psf.profile_at(x, y)
        fwhm_pix = fwhm / camera.pixel_scale
        bright = False
        if is_gal:
            if gal["sersic_n"] == 4.0:
                shape = galsim.DeVaucouleurs(half_light_radius=gal["hlr"], trunc=8 * gal["hlr"])
            else:
                shape = galsim.Exponential(half_light_radius=gal["hlr"])
            shape = shape.shear(e1=float(gal["e1"]), e2=float(gal["e2"]))
            obj = galsim.Convolve(shape.withFlux(flux), profile)
            r = int(min(math.ceil((4 * gal["hlr"] + 2 * fwhm) / camera.pixel_scale) + 4, 96))
            stamp = _draw(obj, local, x, y, r, clip)
        else:
            r = _stamp_radius_core(flux, fwhm_pix, camera.psf.beta)
            stamp = _draw(profile.withFlux(flux), local, x, y, r, clip)
            if (
                flux * _peak_fraction(fwhm_pix, camera.psf.beta)
                > options.halo_threshold * full_well
            ):
                bright = True
                frac = camera.psf.halo_fraction
                if stamp is not None:
                    stamp *= 1.0 - frac
                halo = camera.psf.halo(fwhm).withFlux(flux * frac)
                radius = _halo_radius(flux * frac, fwhm_pix * camera.psf.halo_scale, camera.psf)
                _add_stamp(electrons, _draw(halo, local, x, y, radius, clip, method="no_pixel"))
        _add_stamp(electrons, stamp)
        if det.bbox.contains((x, y)):
            ixx, iyy, ixy = truth_psf.moments((x, y))
            sigma = (ixx * iyy - ixy * ixy) ** 0.25
            table_rows.append(
                {
                    "id": sid,
                    "x": x,
                    "y": y,
                    "ra": ra_k,
                    "dec": dec_k,
                    "mag": mag,
                    "flux": flux / det.gain,
                    "peak": float(stamp.array.max()) / det.gain,
                    "is_galaxy": is_gal,
                    "is_bright": bright,
                    "psf_sigma": sigma,
                    "psf_fwhm": 2.3548200450309493 * sigma,
                    "psf_e1": (ixx - iyy) / (ixx + iyy),
                    "psf_e2": 2 * ixy / (ixx + iyy),
                    "hlr": float(gal["hlr"]) if is_gal else 0.0,
                    "sersic_n": float(gal["sersic_n"]) if is_gal else 0.0,
                }
            )

    # -- noise and detector effects --------------------------------------------------------------
    # (in-place arithmetic throughout: a 4096² float64 image is 134 MB)
    electrons += background  # now the expected charge
    charge = _rng(seed, visit, detector_id, _STREAM_NOISE).poisson(electrons).astype(np.float64)
    del electrons
    area_cm2 = nx * ny * (det.pixel_size / 10.0) ** 2
    cr_rng = _rng(seed, visit, detector_id, _STREAM_CR)
    deposit = add_cosmic_rays(
        charge,
        cr_rng,
        n_tracks=int(cr_rng.poisson(options.cr_rate * area_cm2 * t)),
        pixel_size_um=det.pixel_size * 1000.0,
    )
    threshold = background + det.read_noise**2
    np.sqrt(threshold, out=threshold)
    threshold *= options.cr_threshold
    cr_mask = deposit > threshold
    del deposit, threshold
    bleed_saturation(charge, full_well)
    saturated = charge >= full_well
    read_rng = _rng(seed, visit, detector_id, _STREAM_READ)
    charge += read_rng.standard_normal((ny, nx), dtype=np.float32) * np.float32(det.read_noise)
    charge /= det.gain
    image = charge  # ADU from here on
    saturated |= image >= det.saturation
    image[saturated] = det.saturation  # the ADC clips: saturated pixels read the ceiling
    bad_mask, bad_cols = add_bad_columns(
        image, _rng(seed, visit, detector_id, _STREAM_BAD), n_columns=options.n_bad_columns
    )
    image = image.astype(np.float32)
    mask = Mask((ny, nx))
    mask.set("SAT", saturated & ~bad_mask)
    mask.set("BAD", bad_mask)
    if options.interpolate_defects and bad_mask.any():
        _interpolate_columns(image, bad_mask)
        mask.set("INTRP", bad_mask)
    variance = np.maximum(image, np.float32(0.0))
    variance /= np.float32(det.gain)
    variance += np.float32((det.read_noise / det.gain) ** 2)

    sources = TRUTH_SCHEMA.make_table(len(table_rows))
    for name in TRUTH_SCHEMA.names:
        if name != "is_saturated":
            sources[name] = [row[name] for row in table_rows] if table_rows else sources[name]
        unit = TRUTH_SCHEMA[name].unit
        if unit:
            sources[name].unit = unit
    if table_rows:
        ix = np.clip(np.rint(sources["x"]).astype(int), 0, nx - 1)
        iy = np.clip(np.rint(sources["y"]).astype(int), 0, ny - 1)
        sat_near = np.zeros(len(sources), dtype=bool)
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                sat_near |= saturated[np.clip(iy + dy, 0, ny - 1), np.clip(ix + dx, 0, nx - 1)]
        sources["is_saturated"] = sat_near
    zero_point = zp_e - 2.5 * math.log10(det.gain)  # mag of 1 ADU
    metadata = fits.Header()
    metadata["ORIGIN"] = ("skyquanta.imaging.sim", "Simulated observation")
    metadata["SIMSEED"] = (seed, "Simulation seed")
    metadata["SEEING"] = (visit.seeing, "[arcsec] Seeing FWHM at the boresight")
    metadata["SKYMAG"] = (sky_mag, "[mag/arcsec2] Sky brightness")
    exposure = Exposure(
        image,
        mask=mask,
        variance=variance,
        wcs=wcs,
        detector=det,
        visit=visit.to_visit_info(camera),
        metadata=metadata,
        xy0=det.bbox.origin,
    )
    truth = DetectorTruth(
        sources=Table(sources),
        cr_mask=cr_mask,
        background=(background / det.gain).astype(np.float32),  # ADU
        psf=truth_psf,
        zero_point=zero_point,
        bad_columns=bad_cols,
        background_params=bg_params,
    )
    return SimulatedDetector(exposure=exposure, truth=truth)
