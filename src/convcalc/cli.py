"""The ``convcalc`` command: parse options, call the engine, render, exit.

Exit codes (SPEC.md §6): 0 success, 1 a ``check`` assertion failed, 2 bad
command line or layer syntax, 3 a network that cannot be computed at this
input.  Every error is one or two lines on stderr, never a traceback.
"""
from __future__ import annotations

import errno
import gc
import os
import sys
from typing import List, Optional, Sequence, Tuple

import click

from . import __version__
from .errors import ConvcalcError, StackSyntaxError, quoted, shown
from .layers import fmt_shape

FORMATS = ("table", "json", "csv", "markdown")


def _printable(text: str) -> str:
    """User text inside a message: control characters escaped, so that a
    message stays on its lines."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class LayerError(click.ClickException):
    """A ConvcalcError shown the click way: ``Error: layer 3 (tok): reason``."""

    def __init__(self, err: ConvcalcError):
        super().__init__(_printable(err.message)
                         + (f"\n  hint: {_printable(err.hint)}" if err.hint else ""))
        self.exit_code = err.exit_code
        self.source = err


class Interrupted(click.ClickException):
    """Ctrl-C (SPEC §6): exit 130 and one line."""

    exit_code = 130

    def __init__(self):
        super().__init__("interrupted")


class ShortUsageError(click.ClickException):
    """A usage error in two lines (SPEC §6), instead of click's usage block."""

    exit_code = 2

    def __init__(self, err: click.UsageError):
        hint = f"\nTry '{err.ctx.command_path} --help' for help." if err.ctx else ""
        super().__init__(_printable(err.format_message()) + hint)
        self.usage = err


class Whole(click.ParamType):
    """A whole number in ASCII digits (the one rule for every option and
    token: no '٣', no '3_0', no 10^5-digit values echoed back), within
    [lo, hi]."""

    name = "integer"

    def __init__(self, lo: int = 1, hi: int = 10 ** 12):
        self.lo, self.hi = lo, hi

    def convert(self, value, param, ctx):
        import re
        if isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        else:
            text = str(value).strip()
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            self.fail(f"{quoted(str(value))} is not a whole number (ASCII digits)", param, ctx)
        if len(text.lstrip("+-").lstrip("0")) > len(str(self.hi)):  # before int(): 10^5 digits
            self.fail(f"{quoted(text)} is larger than {self.hi:,}", param, ctx)
        v = int(text)
        if not self.lo <= v <= self.hi:
            self.fail(f"{v:,} is not in the range {self.lo}..{self.hi:,}", param, ctx)
        return v


class StackFile(click.ParamType):
    """``-f FILE`` (``-`` for stdin): read at once, with a size limit, a
    UTF-8 byte-order mark dropped."""

    name = "file"

    def convert(self, value, param, ctx):
        from .language import is_onnx, read_stack_bytes, read_stack_file
        if isinstance(value, LoadedFile):
            return value
        name = str(value)
        try:
            if name == "-":
                stream = getattr(sys.stdin, "buffer", sys.stdin)
                if stream is None:
                    self.fail("stdin is closed", param, ctx)
                return LoadedFile("<stdin>", read_stack_bytes(stream, "<stdin>"))
            if is_onnx(name):  # read by the importer (SPEC §3c)
                if not os.path.isfile(name):
                    self.fail(f"{quoted(name)}: no such file", param, ctx)
                return LoadedFile(name, None)
            if os.path.isdir(name):
                self.fail(f"{quoted(name)}: is a directory", param, ctx)
            return LoadedFile(name, read_stack_file(name))
        except ConvcalcError as e:
            self.fail(e.reason, param, ctx)


class LoadedFile:
    """A ``-f`` file's name and text (None for an ONNX file)."""

    def __init__(self, name: str, text: Optional[str]):
        self.name, self.text = name, text

    def read(self) -> str:
        return self.text


FORMAT_KEY = "convcalc.format"  # ctx.meta: the --format value, once click has parsed it
ARGV_KEY = "convcalc.argv"  # ctx.meta: the command line, for errors raised while parsing it


def _option_value(cmd: click.Command, args: Sequence[str], dest: str) -> Optional[str]:
    """The value ``cmd``'s option ``dest`` gets on the command line ``args``
    as click's parser would read it (the last one wins; an option's value is
    the next word even when it looks like an option; ``--`` ends options),
    without converting anything: for a usage error raised before click knew
    the option.  An unknown option counts as a flag."""
    takes = {}  # option string → (param name, how many words of value)
    for p in cmd.params:
        if isinstance(p, click.Option):
            n = 0 if p.is_flag or p.count else p.nargs
            for o in (*p.opts, *p.secondary_opts):
                takes[o] = (p.name, n)
    value, i = None, 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        if a.startswith("--"):
            name, eq, attached = a.partition("=")
            if name not in takes:
                continue
            pname, n = takes[name]
            if eq:
                val = attached
            elif n:
                val = args[i] if i < len(args) else None
                i += n
            else:
                continue
            if pname == dest:
                value = val
        elif a.startswith("-") and len(a) > 1:  # a cluster of short options: -i1x3x8x8, -hk3
            for j in range(1, len(a)):
                pname, n = takes.get("-" + a[j], (None, 0))
                if n:
                    if j + 1 < len(a):
                        val = a[j + 1:]
                    else:
                        val = args[i] if i < len(args) else None
                        i += n
                    if pname == dest:
                        value = val
                    break
    return value


def _format_on_command_line(group: click.Group, ctx, args: Sequence[str]) -> Optional[str]:
    """The --format a command line asks for, following it down to the
    command (``solve conv …``); None when it names no command taking one."""
    cmd: click.Command = group
    rest = list(args)
    while isinstance(cmd, click.Group):
        at = next((i for i, a in enumerate(rest) if not a.startswith("-")), None)
        sub = cmd.get_command(ctx, rest[at]) if at is not None else None
        if sub is None:
            return None
        cmd, rest = sub, rest[at + 1:]
    return _option_value(cmd, rest, "fmt")


def error_document(code: int, message: str, layer: Optional[int] = None,
                   token: Optional[str] = None, hint: Optional[str] = None) -> dict:
    """SPEC §6: what ``--format json`` prints on stdout when a run fails."""
    return {"error": {"code": code, "layer": layer, "token": token, "message": message,
                      "hint": hint}}


# what a failed write to stdout raises (the reads of stack files say their own errors)
OUTPUT_ERRNOS = {getattr(errno, n) for n in ("EPIPE", "ENOSPC", "EBADF", "EIO", "EFBIG", "EDQUOT")
                 if hasattr(errno, n)}


def _quick_short_options(parser):
    """click tries ``-i`` as a long option first, and the error that sends it on
    to the short options imports difflib and gettext's catalogues to suggest
    spellings no one sees (4 ms of every start-up); a bare error does the same."""
    long_match = getattr(parser, "_match_long_opt", None)
    if long_match is None or not hasattr(parser, "_long_opt"):  # another click
        return parser

    def match(opt, explicit_value, state):
        if opt not in parser._long_opt and opt[:2] not in parser._opt_prefixes:
            raise click.NoSuchOption(opt, message=opt, ctx=parser.ctx)
        return long_match(opt, explicit_value, state)

    parser._match_long_opt = match
    return parser


class Command(click.Command):
    def make_parser(self, ctx):
        return _quick_short_options(super().make_parser(ctx))


class Group(click.Group):
    command_class = Command


class App(click.Group):
    """Turns engine errors into exit codes, and anything unexpected into one line;
    with ``--format json`` an error is also a JSON document on stdout (SPEC §6)."""

    command_class = Command
    group_class = Group

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `convcalc`: the help, not an error
                out(e.ctx.get_help())
                raise click.exceptions.Exit(0) from None
            raise ShortUsageError(e) from None

    def parse_args(self, ctx, args):
        ctx.meta[ARGV_KEY] = list(args)
        return super().parse_args(ctx, args)

    def _wants_json(self, ctx) -> bool:
        fmt = ctx.meta.get(FORMAT_KEY)
        if fmt is None:  # the error came before click read --format
            try:
                fmt = _format_on_command_line(self, ctx, ctx.meta.get(ARGV_KEY, ()))
            except Exception:  # noqa: BLE001 - never let the error path fail
                fmt = None
        return fmt == "json"

    def _json_error(self, ctx, err: click.ClickException, source=None) -> None:
        if not self._wants_json(ctx):
            return
        from .render import dump_json
        if isinstance(source, ConvcalcError):
            doc = error_document(source.exit_code, _printable(source.message), source.layer,
                                 None if source.token is None else shown(source.token, 200),
                                 None if source.hint is None else _printable(source.hint))
        else:
            doc = error_document(err.exit_code, _printable(
                (source or err).format_message()))
        try:
            out(dump_json(doc))
        except Exception:  # noqa: BLE001 - stdout gone: the stderr line still says it
            pass

    def invoke(self, ctx):
        try:
            return self._invoke(ctx)
        except ShortUsageError as err:
            self._json_error(ctx, err, err.usage)
            raise
        except LayerError as err:
            self._json_error(ctx, err, err.source)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise Interrupted() from None
        except click.ClickException as err:
            self._json_error(ctx, err)
            raise

    def _invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ConvcalcError as e:
            raise LayerError(e) from None
        except click.UsageError as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `convcalc solve`
                out(e.ctx.get_help())
                raise click.exceptions.Exit(0) from None
            raise ShortUsageError(e) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort,
                SystemExit, KeyboardInterrupt):
            raise
        except OSError as e:
            if e.errno in OUTPUT_ERRNOS:  # click's own echo (a subcommand's --help) failed
                raise
            err = click.ClickException(f"internal error (OSError: {e}); please report it with "
                                       f"the command line")
            err.exit_code = 3
            raise err from None
        except RecursionError:
            err = click.ClickException("the stack is too deeply nested")
            err.exit_code = 3
            raise err from None
        except Exception as e:  # noqa: BLE001 - a bug must still not print a traceback
            err = click.ClickException(f"internal error ({type(e).__name__}: {e}); "
                                       f"please report it with the command line")
            err.exit_code = 3
            raise err from None


def _terminal() -> Tuple[Optional[int], bool]:
    """(the width to fit, bold headers): a terminal's own width (COLUMNS, as
    shells and rich set it, wins everywhere), while a pipe or a file gets rows
    that never wrap and no escape codes."""
    import shutil
    columns = os.environ.get("COLUMNS", "")
    tty = sys.stdout.isatty()
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    else:
        width = shutil.get_terminal_size().columns if tty else None
    bold = tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    return width, bold


_STDOUT_GONE = False  # the reader of a pipe left (| head): stop writing, quietly


def out(text: str, nl: bool = True) -> None:
    """Everything a command prints on stdout goes through here (SPEC §6): a
    write that fails is exit 3 with one line, a reader that left early is
    silence for the rest of the run (whose exit code still counts)."""
    global _STDOUT_GONE
    from .outputs import write_stream
    if _STDOUT_GONE:
        return
    try:
        write_stream(sys.stdout, text + ("\n" if nl else ""))
    except BrokenPipeError:
        _STDOUT_GONE = True
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of a
    broken pipe says nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _remember_format(ctx, param, value):
    """Note --format for the error path: an error with json is a JSON document too."""
    ctx.meta[FORMAT_KEY] = value
    return value


def format_option(f):
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                        show_default=True, callback=_remember_format, help="Output format.")(f)


def gather_stack(layers: Sequence[str], files) -> Tuple[List[str], Optional[Tuple[int, ...]]]:
    """Tokens from ``-f`` files (in order) then the command line, and the
    default input shape named by a file's ``# input:`` line or the first ``@NAME``."""
    tokens, shape, _ = _gather(layers, files)
    return tokens, shape


def _gather(layers: Sequence[str], files):
    """gather_stack, and what declares the default input (for messages)."""
    from .language import MAX_TOKENS, anchor, default_input, is_onnx, split_stack_text, \
        too_many_tokens
    if len(layers) > MAX_TOKENS:
        raise too_many_tokens("the command line")
    tokens: List[str] = []
    shape = source = None
    for f in files:
        name = getattr(f, "name", "stack")
        if is_onnx(name):  # an ONNX file is a stack too (SPEC §3c)
            tokens.append("@" + name)
            continue
        try:
            text = f.read()
        except UnicodeDecodeError:
            raise StackSyntaxError(f"{_printable(name)}: not a text file") from None
        stack = split_stack_text(text, "<stdin>" if name == "<stdin>" else name)
        # its @PATHs resolve against its own folder, as in a nested file
        tokens += stack.tokens if name == "<stdin>" else anchor(stack.tokens,
                                                                 os.path.dirname(name))
        if shape is None and stack.input_shape is not None:
            shape, source = stack.input_shape, f"the '# input:' line of {_printable(name)}"
    tokens += ["@" + t if is_onnx(t) and not t.startswith("@") else t for t in layers]
    if shape is None:
        shape = default_input(tokens)
        if shape is not None:
            source = _printable(tokens[0])
    return tokens, shape, source


def rank_suggestion(given: Sequence[int], declared: Sequence[int]) -> str:
    """A shape of the declared rank close to what was given: one dim short
    is a batch or channels left out (torchsummary's C×H×W): insert a 1 where
    the result agrees with the declared batch and channels."""
    given, declared = tuple(given), tuple(declared)
    if len(given) + 1 == len(declared):
        batch = (1, *given)  # the batch left out: 3x224x224 → 1x3x224x224
        channels = (given[0], 1, *given[1:])  # the channels left out: 8x28x28 → 8x1x28x28

        def fit(c):
            return (c[1] == declared[1], c[0] == declared[0],
                    sum(a == b for a, b in zip(c, declared)))
        best = max((batch, channels), key=fit)  # max keeps the first of equals: batch
        return f"did you mean {fmt_shape(best)}?"
    return (f"the stack takes {len(declared)}-D inputs (batch, channels and "
            f"{len(declared) - 2} spatial dim{'' if len(declared) == 3 else 's'}), like "
            f"{fmt_shape(declared)}")


def check_declared_rank(shape: Sequence[int], declared: Optional[Sequence[int]],
                        source: Optional[str]) -> None:
    """SPEC §6: an input whose rank disagrees with the stack's own is exit 2
    (``-i 1x28x28 @mnist`` must not silently run a 1-D network)."""
    if declared is None or len(shape) == len(declared):
        return
    raise StackSyntaxError(f"input {fmt_shape(shape)} ({len(shape)}-D) does not match the "
                           f"{len(declared)}-D input {fmt_shape(declared)} declared by "
                           f"{source or 'the stack'}",
                           hint=rank_suggestion(shape, declared))


def complete_layer(ctx, param, incomplete: str):
    """Shell completion: @model names after '@', else layer kinds and their keys."""
    from click.shell_completion import CompletionItem

    from .language import ALIASES, KINDS, TORCH_CLASSES
    if incomplete.startswith("@"):
        from .model_index import model_entries
        return [CompletionItem("@" + e["name"], help=e["description"])
                for e in sorted(model_entries(), key=lambda e: e["name"])
                if e["name"].startswith(incomplete[1:])]
    kind, colon, rest = incomplete.partition(":")
    classes = {cls: base for base, _, _, cls in TORCH_CLASSES.values()}
    bases = {**{n: n for n in KINDS}, **{n: a[0] for n, a in ALIASES.items()}, **classes}
    if not colon:
        return [CompletionItem(n, help=KINDS[bases[n]].doc)
                for n in sorted(bases) if n.startswith(incomplete)]
    base = bases.get(kind, kind)
    if base not in KINDS:
        return []
    head, _, last = rest.rpartition(",")
    prefix = f"{kind}:{head + ',' if head else ''}"
    return [CompletionItem(f"{prefix}{key}=") for key in KINDS[base].keys
            if key.startswith(last) and "=" not in last]


def stack_arguments(f=None, *, memory: bool = True):
    """The stack and its input; ``memory`` False where --dtype changes nothing
    (it is still accepted, hidden, so scripts that pass it keep working)."""
    if f is None:
        return lambda g: stack_arguments(g, memory=memory)
    f = click.argument("layers", nargs=-1, metavar="[LAYER]...",
                       shell_complete=complete_layer)(f)
    f = click.option("-f", "--file", "files", type=StackFile(), multiple=True,
                     help="Read layer tokens from a stack file ('-' for stdin); "
                          "# starts a comment. May be repeated; command-line layers follow.")(f)
    f = click.option("-i", "--input", "input_shape", metavar="SHAPE",
                     help="Input shape, batch first: 1x3x224x224 (2-D), 8x1x16000 (1-D), "
                          "1x1x32x64x64 (3-D). Optional when the stack names one.")(f)
    f = click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16", "float64",
                                                   "int8"]),
                     default="float32", show_default=True, hidden=not memory,
                     help="Element type for activation and parameter memory.")(f)
    return f


def load_stack(layers, files, input_shape, sources: Optional[List[str]] = None):
    """Parsed layers and the input shape, from the arguments, the -f files
    (read once: stdin cannot be read twice) and a stack's own `# input:`;
    ``sources`` collects every file the stack was read from."""
    from .language import parse_shape, parse_stack
    tokens, default, source = _gather(layers, files)
    if not tokens:
        raise click.UsageError("no layers given: name them as arguments, with -f FILE or @MODEL "
                               "(see 'convcalc models')")
    shape = None if input_shape is None else parse_shape(input_shape)
    if shape is not None:
        check_declared_rank(shape, default, source)
    if sources is not None:
        sources += [f.name for f in files if f.name != "<stdin>"]
    specs = parse_stack(tokens, shape, sources)
    if shape is None:
        if default is None:
            raise click.UsageError("missing -i/--input SHAPE (e.g. -i 1x3x224x224)")
        return specs, default
    return specs, shape


def write_output_file(path: str, text: str, inputs: Sequence[str], option: str) -> None:
    """A file an option asks for (``--svg FILE``): written whole or not at
    all (a temporary file and a rename), never over one of the command's
    ``inputs`` (``load_stack``'s ``sources``)."""
    from .outputs import write_file
    write_file(path, text, inputs, option)


def run_analysis(layers, files, input_shape, dtype, explain=False, sources=None):
    from .analysis import analyze
    specs, shape = load_stack(layers, files, input_shape, sources)
    return analyze(specs, shape, dtype, explain)


@click.group(cls=App, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convcalc")
def cli():
    """Shapes, receptive fields, parameters and MACs of convolutional stacks,
    exact against PyTorch.

    \b
    Example:
      convcalc shape -i 1x3x224x224 conv:64,k=7,s=2,p=3 maxpool:3,s=2,p=1
      convcalc shape @vgg16 --format json
    """


def _made(part):
    """A result part, built now if it was passed as a function that builds it."""
    return part() if callable(part) else part


def emit(fmt: str, report, document, csv_text) -> None:
    """Print one result in the chosen format; ``report`` is a render.Report,
    or plain lines that both human formats print as they are.  Each part may
    be a function that builds it: only the format asked for is built."""
    from . import render
    if fmt in ("table", "markdown"):
        report = _made(report)
    if isinstance(report, list) and fmt in ("table", "markdown"):
        out("\n".join(report))
    elif fmt == "table":
        out("\n".join(render.table_lines(report, *_terminal())))
    elif fmt == "markdown":
        out(render.markdown(report).rstrip("\n"))
    elif fmt == "json":
        out(render.dump_json(_made(document)))
    else:
        out(_made(csv_text).rstrip("\n"))


def finish(fmt: str, report, document, csv_text, v) -> None:
    """Print a result (with the verify block when --verify ran), then the
    verification's verdict."""
    if v is not None and fmt == "json":
        document = {**_made(document), "verify": v.to_dict()}
    emit(fmt, report, document, csv_text)
    if v is not None:
        report_verify(v, fmt)


def explain_option(f):
    return click.option("--explain", is_flag=True,
                        help="Show each layer's formulas with the numbers substituted.")(f)


def quantity(ctx, param, value):
    from .language import parse_quantity
    try:
        return parse_quantity(value)
    except ConvcalcError as e:
        raise click.BadParameter(e.reason) from None


def verify_options(f):
    f = click.option("--seed", type=Whole(0, 2 ** 63 - 1), default=0, show_default=True,
                     help="Seed of the random data --verify runs on.")(f)
    f = click.option("--max-memory", default="2GiB", show_default=True, callback=quantity,
                     metavar="SIZE",
                     help="Refuse to --verify (and rf --erf) when the run would need more "
                          "than this (2GiB, 500M).")(f)
    return click.option("--verify", is_flag=True,
                        help="Run the real ops on NumPy data and confirm every shape, parameter "
                             "tensor and receptive field.")(f)


def run_verify(a, seed, max_memory):
    from .verify import verify  # numpy, only when asked for
    return verify(a, seed, max_memory)


def report_verify(v, fmt) -> None:
    """A line saying what was confirmed (table, markdown); exit 1 on any disagreement."""
    if fmt in ("table", "markdown"):
        mark = {True: "ok", False: "FAILED"}
        def n(count, word):
            return f"{count} {word}{'' if count == 1 else 's'}"
        out(f"\nVerified on NumPy in {v.seconds:.2f} s: shapes {mark[v.shapes]} "
                   f"({n(v.layers, 'layer')}) · params {mark[v.params]} "
                   f"({n(v.tensors, 'tensor')}) · receptive field {mark[v.receptive_field]} "
                   f"(impulses from {n(v.impulses, 'input position')} through "
                   f"{n(v.rf_layers, 'layer')}"
                   + (f"; the dependencies of {n(v.dependencies, 'norm/softmax layer')} "
                      f"changed one position on the real op" if v.dependencies else "")
                   + (f" ({v.dependency_runs} distinct layer and input shapes, each run once)"
                      if v.dependency_runs < v.dependencies else "") + ")")
        for line in v.notes:
            out(f"  note: {line}")
    for line in v.failures:
        click.echo(f"Error: verify: {line}", err=True)
    if not v.ok:
        raise click.exceptions.Exit(1)


def parse_position(ctx, param, value):
    if value is None:
        return None
    import re
    parts = value.replace("x", ",").split(",")
    if not all(re.fullmatch(r"\s*[0-9]{1,13}\s*", p) for p in parts):
        raise click.BadParameter(f"{quoted(value)} is not positions like 3,5 (whole numbers "
                                 f"≥ 0 below 10^13, one per spatial dim)")
    return tuple(int(p) for p in parts)


@cli.command()
@stack_arguments
@format_option
@explain_option
@verify_options
@click.option("--svg", "svg_file", metavar="FILE",
              help="Also write an architecture diagram as SVG: blocks placed by resolution "
                   "level (a U-Net draws as a U), sized by shape, skips as connectors.")
@click.option("--count", type=click.Choice(["torch", "fvcore", "ptflops", "thop"]),
              default="torch", show_default=True,
              help="Count MACs and FLOPs as this tool does (torch: torch.utils.flop_counter).")
@click.option("--depth", type=Whole(1), metavar="N",
              help="Group an imported model's rows by the first N parts of their source names "
                   "(layer1.0.conv1 at depth 1 is layer1), as torchinfo's depth does.")
def shape(layers, files, input_shape, dtype, fmt, explain, verify, seed, max_memory, svg_file,
          count, depth):
    """Per-layer output shape, padding, receptive field, params, MACs, memory.

    \b
    LAYER tokens are KIND or KIND:ARGS, e.g. conv:64,k=3,s=2,p=same
    maxpool:3,s=2,ceil tconv:32,k=4,s=2,p=1 up:2,mode=bilinear bn relu
    flatten linear:10; @NAME inserts a built-in model or a stack file.
    """
    from . import render
    sources: List[str] = []
    a = run_analysis(layers, files, input_shape, dtype, explain, sources)
    v = run_verify(a, seed, max_memory) if verify else None
    if count != "torch":
        from .conventions import recount
        a = recount(a, count)
    if svg_file is not None:
        from .diagram_svg import svg
        write_output_file(svg_file, svg(a), sources, "--svg")
    if depth is not None:
        from .analysis import group_by_depth
        a = group_by_depth(a, depth)
    finish(fmt, lambda: render.shape_report(a), a.to_dict, lambda: render.shape_csv(a), v)


@cli.command()
@stack_arguments(memory=False)
@format_option
@explain_option
@click.option("--at", "at", metavar="POS", callback=parse_position,
              help="An output position, one index per spatial dim (3,5): print the exact input "
                   "region it depends on.")
@click.option("--layer", type=Whole(1), metavar="N",
              help="With --at or --erf: the position is in the output of layer N (its # in "
                   "the table), not of the last layer.")
@click.option("--show", is_flag=True,
              help="With --at: draw the input as a grid, marking what the position depends on "
                   "and the padding it reads (inputs up to 80 per dim).")
@click.option("--erf", is_flag=True,
              help="The effective receptive field (Luo et al. 2016) of --at (default: the "
                   "output's center) as a heatmap: |∂y/∂x| with uniform weights.")
@click.option("--svg", "svg_path", metavar="FILE",
              help="With --erf: also write the heatmap as SVG, with the box of 95% of the "
                   "gradient mass, the theoretical region and a colour scale.")
@verify_options
def rf(layers, files, input_shape, dtype, fmt, explain, at, layer, show, erf, svg_path, verify,
       seed, max_memory):
    """Receptive field per layer: size r, effective stride S, effective padding P.

    \b
    Output position u sees input [u·S − P, u·S − P + r − 1]. With --at 3,5
    the exact input region one output position depends on, clipped to the
    input and unclipped, found by propagating index intervals backwards.
    """
    from . import render
    from .analysis import region_at
    sources: List[str] = []
    a = run_analysis(layers, files, input_shape, dtype, explain, sources)
    v = run_verify(a, seed, max_memory) if verify else None
    if svg_path is not None and not erf:
        raise click.UsageError("--svg goes with --erf (the heatmap); draw one layer's "
                               "arithmetic with 'convcalc draw'")
    if erf:
        if show:
            raise click.UsageError("--show draws --at's exact region and --erf its own "
                                   "heatmap: use one of them")
        return _erf(a, at, layer, fmt, v, max_memory, svg_path, sources)
    if at is None:
        if layer is not None or show:
            raise click.UsageError(f"{'--layer' if layer is not None else '--show'} goes with "
                                   f"--at")
        finish(fmt, lambda: render.rf_report(a), a.rf_dict, lambda: render.rf_csv(a), v)
        return
    reg = region_at(a, at, layer)
    lines = render.region_lines(a, reg)
    if show:
        from .pictures import region_grid
        lines += [""] + region_grid(a, reg)
    for title, notes in render.rf_report(a).notes:  # --explain
        lines += ["", title] + [f"  {n}" for n in notes]
    finish(fmt, lines, reg.to_dict, lambda: render.region_csv(reg), v)


@cli.command()
@click.argument("layers", nargs=-1, metavar="LAYER", shell_complete=complete_layer)
@click.option("-i", "--input", "input_shape", metavar="SHAPE",
              help="Input shape, batch first: 1x1x7x7 (2-D) or 1x1x9 (1-D).")
@format_option
@click.option("--svg", "svg_path", metavar="FILE",
              help="Write an animated SVG: one frame per output position, looping (the first "
                   "frame shows in viewers without animation).")
@click.option("--at", "at", metavar="POS", callback=parse_position,
              help="Only this output position (3,5).")
@click.option("--frames", "max_frames", type=Whole(1), metavar="N",
              help="At most N frames, the first output positions in order (default: 64 in the "
                   "terminal; every position, up to 4096, in --svg and --format json).")
@click.option("--ascii", "ascii_only", is_flag=True,
              help="Plain ASCII cells (the default when the terminal is not UTF-8).")
def draw(layers, input_shape, fmt, svg_path, at, max_frames, ascii_only):
    """The conv arithmetic of one layer, position by position.

    \b
    The input grid with its padding cells (a transposed conv's inserted
    zeros), the kernel's footprint with its dilation holes, the output grid,
    and which inputs each output position reads (with the weights of an
    average pool or an interpolation). Examples:
      convcalc draw conv:1,k=3,d=2,p=same -i 1x1x7x7
      convcalc draw tconv:1,k=3,s=2,p=1,op=1 -i 1x1x3x3 --svg tconv.svg
      convcalc draw up:2,mode=bilinear -i 1x1x3x3 --at 1,4
    """
    from . import arithmetic, layer_pictures, render
    if len(layers) != 1:  # one line (SPEC §6), exit 2
        raise StackSyntaxError("draw takes one layer token" + (
            f", got {len(layers)}: {' '.join(_printable(t) for t in layers[:4])}"
            f"{' …' if len(layers) > 4 else ''}" if layers else " (e.g. conv:1,k=3,p=1)"))
    if input_shape is None:
        raise StackSyntaxError("draw needs -i/--input SHAPE (e.g. -i 1x1x7x7)")
    pic = arithmetic.picture(layers[0], input_shape)
    if at is not None:
        frames, cut = [pic.frame(at)], None
    else:
        terminal = svg_path is None and fmt in ("table", "markdown")
        cap = max_frames or (64 if terminal else arithmetic.MAX_FRAMES)
        frames = [pic.frame(p) for _, p in zip(range(cap), pic.positions())]
        cut = None if len(frames) == pic.count else (
            f"(the first {len(frames)} of {pic.count} output positions; --frames N or --at POS "
            f"for others)")
    if svg_path is not None:
        write_output_file(svg_path, layer_pictures.svg(pic, frames, cut), (), "--svg")
        if fmt in ("table", "markdown"):
            out(f"Wrote {_printable(svg_path)}: {len(frames)} frame"
                f"{'s' if len(frames) != 1 else ''} of {_printable(pic.token)} on "
                f"{fmt_shape(pic.input_shape)}")
            return
    from .outputs import is_unicode
    ascii_only = ascii_only or not is_unicode(getattr(sys.stdout, "encoding", None) or "ascii")
    doc = arithmetic.to_dict(pic, frames)
    csv_rows = [[*f.at, *cell, arithmetic.weight_number(w)]
                for f in frames for cell, w in sorted(f.reads.items())]
    names = ("y", "x") if len(pic.dims) == 2 else ("x",)
    header = [f"at_{n}" for n in names] + [f"in_{n}" for n in names] + ["weight"]
    lines = [] if fmt not in ("table", "markdown") else \
        layer_pictures.text(pic, frames, ascii_only, cut)
    emit(fmt, lines, doc, render.csv_text(header, csv_rows))


def _shape_option(ctx, param, value):
    from .language import parse_shape
    if value is None:
        return None
    try:
        return parse_shape(value)
    except ConvcalcError as e:
        raise click.BadParameter(e.reason) from None


def _erf(a, at, layer, fmt, v, max_memory, svg_path=None, inputs=()) -> None:
    from . import pictures, render
    from .analysis import region_at
    target = len(a.layers) - 1
    if layer is not None:
        target = max(i for i, r in enumerate(a.layers) if r.index == layer) \
            if any(r.index == layer for r in a.layers) else None
        if target is None:
            raise click.BadParameter(f"the stack has no layer {layer}", param_hint="--layer")
    out = a.layers[target].spatial_sizes
    if at is None:
        at = tuple(n // 2 for n in out)
    reg = region_at(a, at, a.layers[target].index)  # validates the position and the path
    g = pictures.erf(a, at, target, max_memory)
    ext = pictures.erf_extent(g)
    if svg_path is not None:
        from .heatmap_svg import erf_svg
        row = a.layers[target]
        title = (f"Effective receptive field of output {','.join(map(str, at))} of layer "
                 f"{row.index} ({row.spec}) on {fmt_shape(a.input_shape)}")
        write_output_file(svg_path, erf_svg(g, ext, title, reg.region), inputs, "--svg")
    doc = {"at": list(at), "layer": a.layers[target].index,
           "extent_95": [list(e) for e in ext],
           # seven significant digits: a gradient of 1e-9 of the peak is not 0
           "erf": [[float(f"{x:.7g}") for x in row] for row in g.reshape(-1, g.shape[-1])]}
    lines = pictures.erf_lines(a, at, target, g)
    if svg_path is not None:
        lines.append(f"Wrote {_printable(svg_path)}")
    finish(fmt, lines, doc,
           render.csv_text([f"x{i}" for i in range(g.shape[-1])], doc["erf"]), v)


@cli.command()
@stack_arguments(memory=False)
@format_option
@click.option("--expect-output", callback=_shape_option, metavar="SHAPE",
              help="The output shape must be exactly this (1x10).")
@click.option("--max-params", callback=lambda c, p, v: None if v is None else quantity(c, p, v),
              metavar="N", help="At most this many parameters (25M).")
@click.option("--max-macs", callback=lambda c, p, v: None if v is None else quantity(c, p, v),
              metavar="N", help="At most this many MACs (4.1G).")
@click.option("--min-rf", type=Whole(1), metavar="N",
              help="The receptive field (of the output, or of the last layer before positions "
                   "mix) is at least N in every dim.")
@click.option("--divisible-by", type=Whole(1), metavar="N",
              help="The input is divisible by N, and every input size divisible by N (up to "
                   "this one; 16 of them sampled) goes through without rounding, every "
                   "add/concat lining up.")
def check(layers, files, input_shape, dtype, fmt, expect_output, max_params, max_macs, min_rf,
          divisible_by):
    """Assertions for CI: exit 1 and list what failed.

    \b
    Example:
      convcalc check @resnet50 --expect-output 1x1000 --max-params 26M \\
          --max-macs 4.2G --min-rf 200 --divisible-by 32
    """
    from . import render
    from .analysis import analyze
    from .checks import CSV_HEADER, run_checks
    specs, shape = load_stack(layers, files, input_shape)
    a = analyze(specs, shape, dtype)
    results = run_checks(a, specs, expect_output, max_params, max_macs, min_rf, divisible_by)
    if not results:
        raise click.UsageError("no assertion given: use --expect-output, --max-params, "
                               "--max-macs, --min-rf or --divisible-by")
    failed = [c for c in results if not c.passed]
    rows = [[c.label, c.expected, c.shown, "pass" if c.passed else "FAIL"] for c in results]
    summary = [f"{len(results) - len(failed)} of {len(results)} checks passed"]
    doc = {"ok": not failed, "input_shape": list(a.input_shape),
           "checks": [c.to_dict() for c in results]}  # SPEC §5: plain numbers
    emit(fmt, render.Report(("check", "expected", "actual", "result"), rows, (), summary,
                            give_up=("expected", "result")), doc,
         render.csv_text(CSV_HEADER, [c.csv_row() for c in results]))
    if failed:
        for c in failed:
            click.echo(f"Error: check failed: {c.label}: expected {c.expected}, got {c.shown}",
                       err=True)
        raise click.exceptions.Exit(1)


@cli.group()
def solve():
    """Solve for geometry: a layer's padding, or a stack's input sizes.

    \b
    Examples:
      convcalc solve conv --in 64 --out 32 -k 4 -s 2
      convcalc solve tconv --in 32 --out 64 -s 2
      convcalc solve sizes @unet --range 64..1024
    """


SOLVE_HELP = {
    "conv": "Every conv (kernel, stride, padding) that maps an input size to a target size.",
    "tconv": "Every transposed conv (kernel, stride, crop, output padding) that maps an "
             "input size to a target size.",
    "maxpool": "Every max pool (kernel, stride, padding, ceil mode) that maps an input size "
               "to a target size.",
    "avgpool": "Every average pool (kernel, stride, padding, ceil mode) that maps an input "
               "size to a target size.",
}


SOLVE_ORDER = {
    "conv": "Best first: no window of padding only, symmetric padding (as nn.Conv takes "
            "it), every input read, then the smallest padding, kernel and stride.",
    "tconv": "Best first: the smallest crop, then output padding, kernel and stride.",
    **dict.fromkeys(("maxpool", "avgpool"),
                    "Best first: no window of padding only, symmetric padding (as the nn "
                    "pool takes it), floor before ceil mode, every input read, then the "
                    "smallest padding."),
}


def _solution_notes(x) -> str:
    """Why a solution ranks where it does, in words."""
    notes = []
    if x.wasted:
        notes.append("a window reads padding only")
    if not x.in_pytorch:
        notes.append("asymmetric: F.pad first")
    if x.ceil:
        notes.append("ceil mode")
    if x.loses:
        notes.append("leaves inputs unread")
    return "; ".join(notes)


def _solve_layer_command(kind: str):
    options = [
        click.option("--in", "size_in", type=Whole(1), required=True, metavar="N",
                     help="Input size (one spatial dim)."),
        click.option("--out", "size_out", type=Whole(1), required=True,
                     metavar="N", help="Wanted output size."),
        click.option("-k", "--kernel", type=Whole(1),
                     help="Kernel size (searched over 1..11 when left out)."),
        click.option("-s", "--stride", type=Whole(1),
                     help="Stride (searched over 1..4 when left out)."),
    ]
    if kind != "avgpool":  # PyTorch's AvgPool has no dilation
        options.append(click.option("-d", "--dilation", type=Whole(1), default=1,
                                    show_default=True, help="Dilation."))
    options += [
        click.option("--limit", type=Whole(0), default=10, show_default=True,
                     metavar="N", help="List the best N (0: all of them)."),
        format_option,
    ]

    def command(size_in, size_out, kernel, stride, fmt, limit, dilation=1):
        from . import render
        from .solve import solve_layer
        every = solve_layer(kind, size_in, size_out, kernel, stride, dilation)
        found = every[:limit] if limit else every
        doc = {"ok": bool(found), "kind": kind, "in": size_in, "out": size_out,
               "total": every.total, "solutions": [x.to_dict() for x in found]}
        csv_header = ("token", "before", "after", "op", "ceil")
        if not found:
            if fmt == "json":  # a document whatever happened, as check prints one (SPEC §6)
                emit(fmt, [], doc, "")
            elif fmt == "csv":
                emit(fmt, [], doc, render.csv_text(csv_header, []))
            click.echo(f"No {kind} with those settings maps {size_in} to {size_out}.", err=True)
            raise click.exceptions.Exit(1)
        rows = [[x.token, render.fmt_padding((x.padding,)), str(x.op), x.formula(size_in),
                 _solution_notes(x)] for x in found]
        heads = ("layer", "crop" if kind == "tconv" else "padding", "op", "check", "note")
        total = every.total
        ways = f"{total:,} way{'' if total == 1 else 's'}"
        if len(found) == total:
            shown = ""
        elif len(found) < len(every):
            lists = "all" if len(every) == total else f"the best {len(every)}"
            shown = f"; the best {len(found)} (--limit 0 lists {lists})"
        else:  # solve_layer keeps the best MAX_SOLUTIONS of a huge range
            shown = f"; the best {len(found)}, the most it lists"
        emit(fmt, render.Report(heads, rows, (),
                                [f"{ways} to map {size_in} → {size_out} with {kind}{shown}",
                                 SOLVE_ORDER[kind]]),
             doc, render.csv_text(csv_header, [[x.token, *x.padding, x.op,
                                                str(x.ceil).lower()] for x in found]))

    for option in reversed(options):
        command = option(command)
    return solve.command(kind, help=SOLVE_HELP[kind], short_help=SOLVE_HELP[kind].split(" that")[0]
                         )(command)


for _kind in ("conv", "tconv", "maxpool", "avgpool"):
    _solve_layer_command(_kind)


def _size_range(ctx, param, value):
    import re
    m = re.fullmatch(r"\s*([0-9]{1,13})\s*(?:\.\.|-|:)\s*([0-9]{1,13})\s*", value or "")
    if not m:
        raise click.BadParameter(f"{quoted(value or '')} is not a range like 64..1024 (whole "
                                 f"numbers below 10^13)")
    return int(m.group(1)), int(m.group(2))


@solve.command("sizes")
@stack_arguments(memory=False)
@format_option
@click.option("--range", "size_range", callback=_size_range, default="32..1024",
              show_default=True, metavar="LO..HI", help="The input sizes to try.")
def solve_sizes_command(layers, files, input_shape, dtype, fmt, size_range):
    """The input sizes in a range for which every layer divides exactly and
    every add/concat lines up (every spatial dim set to the size)."""
    from . import render
    from .solve import solve_sizes
    specs, template = load_stack(layers, files, input_shape)  # batch and channels from it
    res = solve_sizes(specs, template, *size_range)
    lo, hi = size_range
    if res.sizes:
        listed = ", ".join(map(str, res.sizes[:12])) + (", …" if len(res.sizes) > 12 else "")
        head = (f"{len(res.sizes)} of {hi - lo + 1} sizes in {lo}..{hi} work exactly"
                + (f": every multiple of {res.step} from {res.sizes[0]} to {res.sizes[-1]}"
                   if res.step else ""))
        lines = [head, f"  {listed}"]
    else:
        lines = [f"No size in {lo}..{hi} works exactly."]
    if res.failures:
        lines.append("For example:")
        lines += [f"  {n}: {why}" for n, why in res.failures[:3]]
    emit(fmt, lines, {"ok": bool(res.sizes), **res.to_dict()},
         render.csv_text(("size",), [[n] for n in res.sizes]))
    if not res.sizes:
        click.echo(f"Error: no input size in {lo}..{hi} goes through exactly", err=True)
        raise click.exceptions.Exit(1)


@cli.command("import")
@click.argument("model", required=False, metavar="[MODEL.onnx]")
@click.option("--torch", "torch_ref", metavar="MODULE:CALLABLE",
              help="A Python callable that returns an nn.Module (torchvision.models:resnet50, "
                   "or mynet:build from the current folder); needs -i and your own torch.")
@click.option("-i", "--input", "input_shape", metavar="SHAPE",
              help="Input shape, batch first (an ONNX file's own input when not given).")
@click.option("-o", "--output", "out_file", metavar="FILE",
              help="Write the stack file here (through a temporary file) instead of stdout.")
def import_command(model, torch_ref, input_shape, out_file):
    """Print a real model as a stack file: an ONNX file, or a PyTorch module.

    \b
    Every line is NAME=TOKEN, the source name (module path or ONNX node)
    before the token; use the file with -f, or give the .onnx file itself
    to shape, rf and check directly.
    """
    from .importing import import_stack, load_callable, write_atomically
    if (model is None) == (torch_ref is None):
        raise click.UsageError("give a MODEL.onnx file or --torch MODULE:CALLABLE (one of them)")
    if torch_ref is not None:
        if input_shape is None:
            raise click.UsageError("--torch needs -i/--input SHAPE (e.g. -i 1x3x224x224)")
        text = import_stack(load_callable(torch_ref), input_shape)
    else:
        text = import_stack(model, input_shape)
    if out_file is not None:
        write_atomically(out_file, text, inputs=[model or ""])
    else:
        out(text, nl=False)


@cli.command()
@format_option
def models(fmt):
    """List the built-in model stacks (use them as @NAME)."""
    from . import render
    from .model_index import model_entries
    entries = model_entries()
    csv_rows = [[e["name"], e["family"], e["description"], render.fmt_shape(e["input"]),
                 e["layers"], e["params"], e["macs"]] for e in entries]
    emit(fmt, lambda: render.models_report(entries), entries,
         lambda: render.csv_text(("name", "family", "description", "input", "layers", "params",
                                  "macs"), csv_rows))


class _ClosedStdout:
    """Stands in for a stdout the process started without: a write is an
    error (click would otherwise skip it silently and exit 0)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _say(text: str) -> None:
    """One error on stderr (bounded lines); nothing when stderr is gone too."""
    from .outputs import cut_message
    try:
        click.echo(cut_message(text), err=True)
    except Exception:  # noqa: BLE001 - nowhere left to say it
        pass


def _spell_ascii_where_needed() -> None:
    """A stream whose encoding cannot hold × or ≤ gets them spelled in ASCII
    (one wrapper for every write: rich's tables, click's help, the errors)."""
    from .outputs import SpelledStream, is_unicode
    if sys.stdout is not None and not is_unicode(getattr(sys.stdout, "encoding", None)):
        sys.stdout = SpelledStream(sys.stdout)
    if sys.stderr is not None and not is_unicode(getattr(sys.stderr, "encoding", None)):
        sys.stderr = SpelledStream(sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """The console script: SPEC §6's exit codes for everything click and the
    output side can raise -- a closed or full stdout is exit 3 with one line,
    a reader that left early is silence, Ctrl-C is exit 130."""
    _spell_ascii_where_needed()
    # one short run whose results hold no cycles: the collector would only walk
    # the growing heap of rows and their rendering again and again
    gc.disable()
    if sys.stdout is None:  # started with fd 1 closed (>&-): every write must fail, not vanish
        sys.stdout = _ClosedStdout()
    try:
        try:
            code = cli.main(args=argv, prog_name="convcalc", standalone_mode=False)
            code = code if isinstance(code, int) else 0
        except click.ClickException as e:
            _say(f"Error: {e.format_message()}")
            code = e.exit_code
        except ConvcalcError as e:  # raised while click parsed (the help on a full disk)
            _say(f"Error: {_printable(e.message)}")
            code = e.exit_code
        except (click.Abort, KeyboardInterrupt):
            _say("Error: interrupted")
            code = 130
        except SystemExit:
            if type(sys.stdout).__name__ != "_PacifyFlushWrapper":
                raise
            code = 0  # click's own answer to a reader that left during --help: silence
        if not _STDOUT_GONE:
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        code = 0
    except OSError as e:
        _silence_stdout()  # the interpreter's last flush would fail again
        _say(f"Error: cannot write the output: {e.strerror or e}")
        code = 3
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
