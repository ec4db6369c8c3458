"""The napari plugin: reader, writer, sample data and dock widgets.

This is the only package that imports napari or Qt, and it does so lazily:
the reader, the writer and the sample data work without a GUI; the dock
widgets need napari and a Qt binding. Each module holds one part:

- ``stack_widget``: the Focus stack dock widget, composed of
  ``input_picker`` (which layer, and its z axis), ``channel_picker``
  (channel layers fused together), ``engine_form`` (the engine options, a
  magicgui form generated from ``options.OPTIONS``, shared with the batch
  widget) and ``report_table`` (per-frame alignment);
- ``batch_widget``: the Batch dock widget (many stacks, ``batch.run_batch``);
- ``layers``: layers to frames, results to layers;
- ``geometry``: a layer's z axis and sliders, where results go (pure functions);
- ``surface``: a height map as a triangle mesh for the 3D view (pure functions);
- ``layer_metadata``: the ``layer.metadata`` keys all of these share;
- ``_reader``, ``_writer``, ``_sample_data``: the npe2 contributions;
- ``_notify``: notifications (warnings without napari).
"""
