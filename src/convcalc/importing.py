"""The import front door (SPEC §3c): PyTorch modules and ONNX files to stacks.

The importers live in :mod:`convcalc.importers`; this module picks one for
an object and turns its tokens into an analysis or a stack file.  torch and
onnx are imported only inside the importers, when used.
"""
from __future__ import annotations

import os
import sys
from typing import List, Sequence, Tuple, Union

from .analysis import Analysis, analyze
from .errors import StackSyntaxError
from .language import parse_shape


def _is_onnx(obj) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        return True
    return type(obj).__name__ == "ModelProto"


def import_tokens(obj, input_shape=None) -> Tuple[List[str], Tuple[int, ...]]:
    """(tokens, input shape) of a torch ``nn.Module``, an ONNX path or ModelProto."""
    shape = None if input_shape is None else parse_shape(input_shape)
    if _is_onnx(obj):
        from .importers.onnxfile import import_onnx
        return import_onnx(os.fspath(obj) if not hasattr(obj, "graph") else obj, shape)
    if shape is None:
        raise StackSyntaxError("importing a PyTorch module needs the input shape "
                               "(-i 1x3x224x224)")
    from .importers.pytorch import import_torch
    tokens, _ = import_torch(obj, shape)  # (tokens, the output shape torch computed)
    return tokens, shape


def import_stack(obj, input_shape=None) -> str:
    """The stack file text of an imported model: ``# input:`` and one
    ``NAME=TOKEN`` line per layer."""
    from .importers.graph import stack_text
    tokens, shape = import_tokens(obj, input_shape)
    source = os.fspath(obj) if isinstance(obj, (str, os.PathLike)) else type(obj).__name__
    return stack_text(tokens, shape, source)


def from_torch(module, input_shape: Union[str, Sequence[int]], **kwargs) -> Analysis:
    """Trace a PyTorch module (torch.fx, torch.export where fx fails) and analyze it."""
    tokens, shape = import_tokens(module, input_shape)
    return analyze(tokens, shape, **kwargs)


def from_onnx(path_or_model, input_shape=None, **kwargs) -> Analysis:
    """Read an ONNX file (or ``onnx.ModelProto``) and analyze it."""
    tokens, shape = import_tokens(path_or_model, input_shape)
    return analyze(tokens, shape, **kwargs)


def load_callable(ref: str):
    """``MODULE:CALLABLE`` (``torchvision.models:resnet50``, ``mynet:build`` from
    the current folder, or ``path/to/file.py:build``) called with no arguments."""
    import importlib.util
    mod_name, colon, attr = ref.partition(":")
    if not colon or not mod_name or not attr:
        raise StackSyntaxError(f"--torch {ref!r}: write MODULE:CALLABLE (e.g. "
                               f"torchvision.models:resnet50)")
    try:
        if mod_name.endswith(".py"):
            spec = importlib.util.spec_from_file_location("_convcalc_user_model", mod_name)
            if spec is None or not os.path.isfile(mod_name):
                raise StackSyntaxError(f"--torch {ref!r}: no file {mod_name}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(mod_name)
        fn = module
        for part in attr.split("."):
            fn = getattr(fn, part)
        return fn() if callable(fn) and not _is_module(fn) else fn
    except StackSyntaxError:
        raise
    except Exception as e:  # the user's code: say what failed, in one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise StackSyntaxError(f"--torch {ref!r}: {type(e).__name__}: {first[:300]}") from None


def _is_module(obj) -> bool:
    return any(c.__name__ == "Module" and c.__module__.startswith("torch.nn")
               for c in type(obj).__mro__)


def write_atomically(path: str, text: str, inputs: Sequence[str] = (), option: str = "-o"
                     ) -> None:
    """:func:`convcalc.outputs.write_file` (a temporary file in the same
    folder and a rename; never over an input), for ``import -o`` and the
    pictures' ``--svg``."""
    from .outputs import write_file
    write_file(path, text, inputs, option=option)
