"""Astronomy for skyquanta: the image data model and the algorithms, as plain code.

Nothing here knows the task framework: functions and classes take numpy arrays, astropy
objects and the data model below, and return them. `tasks/` wires them into PipelineTasks.

What lives here
---------------
- Data model: `exposure` (`Exposure`: image, `mask.Mask`, variance, WCS, PSF, metadata,
  detector geometry), `mask`, `psf`, `catalog` (`SourceCatalog` with a schema),
  `geometry` (boxes and points).
- Algorithms of characterizeImage: `background`, `detection`, `cosmic_rays`,
  `measurement`, `star_selector`, `psf_determiner`, `aperture_correction` (with the
  convolution kernels in `_convolve`).
- Storage: `fits_io` (LSST's multi-extension Exposure FITS layout), `zarr_io`,
  `formatters` and `storage_classes` (registered with the butler through the
  ``skyquanta.storage_classes`` entry point).
- Getting data in: `ingest` (raws, cameras), `refcat` (reference catalogs), `cli` (the
  ``butler`` subcommands that do it) and `sim/` (simulated cameras and observations with
  truth, for the demo and the tests).
- `_errors`: every exception raised on purpose here (`ImagingError` and its subclasses).

May import: `butler` (storage classes, formatters, ingest) and `cluster` (``simulate -j``);
never `pipeline` or `tasks` (checked by import-linter).
"""
