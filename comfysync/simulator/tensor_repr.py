"""Render image/mask data the way `str(torch.Tensor)` prints it (used in execution_error)."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence

EDGE = 3
THRESHOLD = 1000
LINEWIDTH = 80
PRECISION = 4


def _f32(x: float) -> float:
    # Tensors hold float32; printing goes through the float32 value widened to double.
    return struct.unpack("f", struct.pack("f", x))[0]


def _indices(size: int, summarize: bool) -> list[int | None]:
    """Indices printed along one dimension; None marks the '...' gap."""
    if summarize and size > 2 * EDGE:
        return [*range(EDGE), None, *range(size - EDGE, size)]
    return list(range(size))


class _Formatter:
    """Pick int/fixed/scientific style and a common width, as torch's formatter does."""

    def __init__(self, values: list[float]) -> None:
        nonzero = [v for v in values if math.isfinite(v) and v != 0]
        self.int_mode = all(v == math.ceil(v) for v in nonzero)
        self.sci_mode = False
        self.width = 1
        if not nonzero:
            return
        amax = max(abs(v) for v in nonzero)
        amin = min(abs(v) for v in nonzero)
        if self.int_mode:
            if amax / amin > 1000.0 or amax > 1.0e8:
                self.sci_mode = True
                self.width = max(len(f"{v:.{PRECISION}e}") for v in nonzero)
            else:
                self.width = max(len(f"{v:.0f}") + 1 for v in nonzero)
        elif amax / amin > 1000.0 or amax > 1.0e8 or amin < 1.0e-4:
            self.sci_mode = True
            self.width = max(len(f"{v:.{PRECISION}e}") for v in nonzero)
        else:
            self.width = max(len(f"{v:.{PRECISION}f}") for v in nonzero)

    def format(self, v: float) -> str:
        if self.sci_mode:
            s = f"{v:{self.width}.{PRECISION}e}"
        elif self.int_mode:
            s = f"{v:.0f}" + ("" if math.isinf(v) or math.isnan(v) else ".")
        else:
            s = f"{v:.{PRECISION}f}"
        return " " * (self.width - len(s)) + s


def tensor_repr(shape: Sequence[int], get: Callable[[tuple[int, ...]], float]) -> str:
    """Return torch's repr of a float32 tensor of `shape` whose elements come from `get`."""
    numel = math.prod(shape)
    summarize = numel > THRESHOLD
    dims = [_indices(n, summarize) for n in shape]
    cache: dict[tuple[int, ...], float] = {}

    def val(idx: tuple[int, ...]) -> float:
        if idx not in cache:
            cache[idx] = _f32(get(idx))
        return cache[idx]

    def collect(level: int, prefix: tuple[int, ...], out: list[float]) -> None:
        if level == len(shape):
            out.append(val(prefix))
            return
        for i in dims[level]:
            if i is not None:
                collect(level + 1, (*prefix, i), out)

    values: list[float] = []
    collect(0, (), values)
    fmt = _Formatter(values)

    def vector(prefix: tuple[int, ...], indent: int) -> str:
        per_line = max(1, (LINEWIDTH - indent) // (fmt.width + 2))
        items = [" ..." if i is None else fmt.format(val((*prefix, i))) for i in dims[-1]]
        lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"

    def render(level: int, prefix: tuple[int, ...], indent: int) -> str:
        if level == len(shape) - 1:
            return vector(prefix, indent)
        parts = [
            "..." if i is None else render(level + 1, (*prefix, i), indent + 1) for i in dims[level]
        ]
        depth = len(shape) - level
        return "[" + ("," + "\n" * (depth - 1) + " " * (indent + 1)).join(parts) + "]"

    if not shape:
        return f"tensor({fmt.format(val(()))})"
    return "tensor(" + render(0, (), len("tensor(")) + ")"
