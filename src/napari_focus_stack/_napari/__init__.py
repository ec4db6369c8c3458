"""The napari plugin: reader, writer, sample data and dock widgets.

This is the only package that imports napari or Qt, and it does so lazily:
the reader, the writer and the sample data work without a GUI; the dock
widgets need napari and a Qt binding. Each module holds one part:

- ``stack_widget``: the Focus stack dock widget, composed of
  ``input_picker`` (which layer, and its z axis), ``channel_picker``
  (channel layers fused together), ``engine_form`` (the engine options, a
  magicgui form generated from ``options.OPTIONS``, shared with the batch
  widget), ``report_table`` (per-frame alignment) and ``height_view`` (the
  3D height view: the mesh of :mod:`napari_focus_stack.surface` built on a
  worker, exaggeration, camera, colouring);
- ``batch_widget``: the Batch dock widget (many stacks, ``batch.run_batch``);
- ``layers``: layers to frames, results to layers;
- ``geometry``: a layer's z axis and sliders, where results go (pure functions);
- ``layer_metadata``: the ``layer.metadata`` keys all of these share;
- ``_reader``, ``_writer`` (images; several layers), ``_mesh_writer`` (Surface layers to PLY, STL,
  OBJ), ``_sample_data``: the npe2 contributions;
- ``_notify``: notifications (warnings without napari).
"""
