"""External FER models: ONNX classifiers and torchvision ResNet state dicts described by a spec file,
and built-in trained models (``fer-minixception``), behind the interface of ferkit's own methods.

Modules: ``spec`` (the spec file format), ``networks`` (ONNX and ResNet loading and checks), ``method``
(ExternalMethod), ``builtin`` (built-in models), ``loader`` (the single entry point used by
``ferkit.external.loader.load_method``, and ``ferkit import``). Their ONNX export lives with ferkit's own
in ``ferkit.export.external``.
"""
