"""The frame stage: from a path on disk to one frame ready to measure.

- :mod:`.header` - reading a header cheaply (the block-aligned prefix) and the size it implies
- :mod:`.admission` - may this path be read as a frame at all (raises ``FrameRejected``)
- :mod:`.load` - :func:`~.load.load_frame`: the measured plane, its time, site, gain, saturation
- :mod:`.wcs` - the header's WCS, binning a WCS, the pixel scale
- :mod:`.detect` - :func:`~.detect.find_stars`, the one star detector (``sep``): the astrometry's
  point sources and (:func:`~.detect.field_stars`) every source of a starlist
- :mod:`.timesite` - mid-exposure time, the site, HJD, airmass, scintillation, the observing night

Nothing is imported here, so that the watcher's cheap header reads do not pay for the loader.
"""
