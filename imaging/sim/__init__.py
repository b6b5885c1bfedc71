"""Simulated LSST-like observations with truth, for the demo and the tests.

A `Camera` (detectors on a focal plane, TAN-SIP distortion, PSF pattern) observes `Visit`
pointings; `simulate_detector` turns one (visit, detector) into an `~imaging.exposure.Exposure`
and its `DetectorTruth`, deterministically from a seed; `write_simulated_observations` writes a
whole run as FITS files with a reference catalog and the camera YAML.
"""

from .artifacts import add_bad_columns, add_cosmic_rays, bleed_saturation
from .camera import DEFAULT_ZERO_POINTS, Camera, make_camera
from .observations import write_simulated_observations
from .psf_field import PsfField, TruthPsf
from .render import render_detector_png
from .simulate import DEFAULT_SKY_MAGS, SimOptions, SimulatedDetector, Visit, simulate_detector
from .sky import COLOUR_TERMS, SkyModel, make_reference_catalog, sources_in_cone
from .truth import TRUTH_SCHEMA, DetectorTruth
from .wcs import make_detector_wcs, to_galsim_wcs

__all__ = [
    "COLOUR_TERMS",
    "DEFAULT_SKY_MAGS",
    "DEFAULT_ZERO_POINTS",
    "TRUTH_SCHEMA",
    "Camera",
    "DetectorTruth",
    "PsfField",
    "SimOptions",
    "SimulatedDetector",
    "SkyModel",
    "TruthPsf",
    "Visit",
    "add_bad_columns",
    "add_cosmic_rays",
    "bleed_saturation",
    "make_camera",
    "make_detector_wcs",
    "make_reference_catalog",
    "render_detector_png",
    "simulate_detector",
    "sources_in_cone",
    "to_galsim_wcs",
    "write_simulated_observations",
]
