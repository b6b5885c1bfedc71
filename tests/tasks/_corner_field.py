"""One detector of a 3 × 3 camera, simulated and characterized, for the tests that score
characterizeImage at a detector's corners (PSF wings, cosmic rays) on 0° and 90° detectors."""

from __future__ import annotations

from typing import Any

from imaging.sim import SimOptions, SkyModel, Visit, make_camera, simulate_detector
from tasks import CharacterizeImageTask

#: The two placements scored: detector 0 at 0° (a corner of the focal plane), detector 1 at
#: 90° (an edge), as ``(detector, orientation)`` with pytest ids.
PLACEMENTS = [(0, 0.0), (1, 90.0)]
PLACEMENT_IDS = ["corner0deg", "edge90deg"]


def characterized_field(
    detector: int, orientation: float, *, size: int, seed: int, star_density: float
) -> tuple[Any, Any, Any]:
    """Simulate ``detector`` (every detector at ``orientation``, no halos) and characterize
    a copy of its exposure with room for every cosmic-ray pixel.

    Returns
    -------
    sim, exposure, result
        The simulation (with its truth), the characterized exposure and the task's result.
    """
    camera = make_camera(9, detector_size=size, orientations=[orientation] * 9)
    visit = Visit(id=3, band="r", ra=150.0, dec=2.0, exposure_time=30.0, mjd=60000.0)
    sky = SkyModel(star_density=star_density)
    options = SimOptions(halo_threshold=1e30)
    sim = simulate_detector(camera, visit, detector, seed=seed, sky=sky, options=options)
    exposure = sim.exposure.clone()
    config = CharacterizeImageTask.ConfigClass()
    config.repair.cosmicray.nCrPixelMax = 100_000
    result = CharacterizeImageTask(config=config).run(exposure, exposureIdInfo=1)
    return sim, exposure, result
