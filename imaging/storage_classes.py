"""Storage classes of the imaging data model, registered with the butler as a plug-in.

The ``skyquanta.storage_classes`` entry point ``imaging`` calls `register`;
the butler itself never imports this package.
"""

from __future__ import annotations

from butler.storage_class import StorageClass, StorageClassRegistry

__all__ = ["STORAGE_CLASSES", "register"]

_TABLE = "butler.datastore.formatters.FitsTableFormatter"

#: The storage classes this package provides.
STORAGE_CLASSES = (
    StorageClass(
        "Exposure",
        "imaging.exposure.Exposure",
        "imaging.formatters.ExposureFitsFormatter",
        ("bbox",),
    ),
    StorageClass(
        "ExposureF",
        "imaging.exposure.Exposure",
        "imaging.formatters.ExposureFitsFormatter",
        ("bbox",),
    ),
    StorageClass("SourceCatalog", "astropy.table.Table", _TABLE),
    StorageClass("SimpleCatalog", "astropy.table.Table", _TABLE),
    StorageClass(
        "Background",
        "imaging.background.BackgroundList",
        "imaging.formatters.BackgroundFitsFormatter",
    ),
    StorageClass(
        "BrightStarStamps",
        "imaging.stamps.BrightStarStamps",
        "imaging.formatters.BrightStarStampsFitsFormatter",
        ("bbox", "indices", "planes"),
    ),
    StorageClass(
        "ExtendedPsf",
        "imaging.extended_psf.ExtendedPsf",
        "imaging.formatters.ExtendedPsfFitsFormatter",
    ),
    StorageClass(
        "ExtendedPsfZarr",
        "imaging.extended_psf.ExtendedPsf",
        "imaging.formatters.ExtendedPsfZarrFormatter",
    ),
    StorageClass("Camera", "imaging.sim.camera.Camera", "imaging.formatters.CameraYamlFormatter"),
)


def register(registry: StorageClassRegistry) -> None:
    """Add the imaging storage classes to a butler's storage class registry."""
    for storage_class in STORAGE_CLASSES:
        registry.register(storage_class)
