"""Focus stacking for napari, Python and the command line."""
__version__ = "0.1.0"
