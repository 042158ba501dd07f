"""Importers: real networks (PyTorch modules, ONNX files) as convcalc stacks.

Each importer walks its framework's graph, maps every node to the layer
language through a table, and hands the nodes to :mod:`.graph`, which wires
them with ``save``/``from``/``add``/``mul``/``concat``.  The framework is
imported only when its importer is used.
"""
