"""convcalc: shapes, receptive fields, parameters and MACs of conv-net stacks.

The engine, without the CLI::

    >>> import convcalc
    >>> r = convcalc.analyze(["conv:64,k=7,s=2,p=3", "maxpool:3,s=2,p=1"], (1, 3, 224, 224))
    >>> r.output_shape
    (1, 64, 56, 56)
"""
from .analysis import Analysis, Memory, Row, Totals, analyze
from .errors import ConvcalcError, ShapeError, StackSyntaxError
from .importing import from_onnx, from_torch, import_stack
from .language import LayerSpec, builtin_models, parse_shape, parse_stack, parse_token
from .receptive import ReceptiveField

__version__ = "0.1.0"

__all__ = ["analyze", "Analysis", "Row", "Totals", "Memory", "ReceptiveField", "LayerSpec",
           "parse_stack", "parse_token", "parse_shape", "builtin_models", "ConvcalcError",
           "StackSyntaxError", "ShapeError", "from_torch", "from_onnx", "import_stack",
           "__version__"]
