"""The napari plugin: reader, writer, sample data and dock widgets.

This is the only package that imports napari or Qt, and it does so lazily:
the reader, the writer and the sample data work without a GUI, the widgets
(``_widget``, ``batch_widget``) need napari and a Qt binding.
"""
