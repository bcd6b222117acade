"""TensorIR generation for ``fused_linear`` (built with TVM's IR builder, no blocks).

Loop nest, outermost first (``parallel`` marks the loop run by TVM's thread pool)::

    n < vector_rows:  for r in rows:  one row in scalar code
    else:             for block in blocks(n, B):          # parallel over row blocks when "rows" and n > B
                        for v in vectors of the block:    # the last one shifted back to end at row n - 1
                          [norms of the Normalizer steps: a pass over the columns]
                          for j in columns of the linear model (unrolled or a loop):
                            x[rows, j] -> imputer / scaler / normalizer steps -> acc[k] += value * W[j, k]
                          raw = acc + b; post-transform; one interleaved store of the K x V results

Weights and preprocessing constants are buffers (arguments), not constants, so
compile time does not grow with their values.  Intermediates of ``exp`` and of
the epilogue live in small stack buffers (LLVM keeps them in registers): this
keeps the expressions TVM simplifies small.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..ground.errors import InvalidConfigError
from ..ir import NORM_TINY, Imputer, Linear, Normalizer, Op, PostTransform, Scaler

MAX_UNROLLED = 256  # columns beyond which a column loop stays a loop whatever ``unroll`` says (code size)


def _factorial(k: int) -> float:
    out = 1.0
    for i in range(2, k + 1):
        out *= i
    return out


class KernelGen:
    """Builds the PrimFunc ``main(x, out, *buffers)`` (IR builder, no blocks) and its buffers."""

    def __init__(self, steps: list[Op], lin: Linear, knobs: Mapping[str, Any], *, parallel: str,
                 post: PostTransform | None):
        from tvm import tirx
        from tvm.script.ir_builder import tirx as T

        self.T, self.tirx = T, tirx
        self.steps, self.lin, self.post = steps, lin, post
        self.dt = knobs["dtype"]
        self.np_dt = np.dtype(self.dt)
        self.V = knobs["vector_rows"]
        self.B = knobs["rows_per_block"]
        self.unroll = knobs["unroll"]
        self.parallel = parallel
        self.K, self.F = lin.coef.shape
        self.n_in = steps[0].input_type().width if steps else self.F
        self.arrays: dict[str, np.ndarray] = {"weight": np.ascontiguousarray(lin.coef.T).reshape(-1),
                                              "bias": lin.intercept}
        for i, op in enumerate(steps):
            if isinstance(op, Scaler):
                self.arrays[f"s{i}_offset"], self.arrays[f"s{i}_scale"] = op.offset, op.scale
            elif isinstance(op, Imputer):
                self.arrays[f"s{i}_fill"] = op.fill
                self.arrays[f"s{i}_keep"] = op.keep.astype(np.int32)
                markers = op.markers()
                if not np.isnan(markers).all():
                    self.arrays[f"s{i}_marker"] = markers
                    self.arrays[f"s{i}_nan"] = np.isnan(markers).astype(np.int32)
        self.buffers = {
            name: np.ascontiguousarray(a if a.dtype == np.int32 else a.astype(self.dt)).reshape(-1)
            for name, a in self.arrays.items()
        }

    # ---------------------------------------------------------------- helpers
    def c(self, value: Any, dtype: str | None = None) -> Any:
        return self.tirx.const(value, dtype or self.dt)

    def bc(self, value: Any, lanes: int) -> Any:
        v = self.c(value) if isinstance(value, (int, float, np.integer, np.floating)) else value
        return v if lanes == 1 else self.tirx.Broadcast(v, lanes)

    def at(self, name: str, j: Any) -> Any:
        """``buffers[name][j]``: a constant index when the column loop is unrolled."""
        return self.buf[name][j]

    def keep_of(self, i: int, j: Any) -> Any:
        return int(self.arrays[f"s{i}_keep"][j]) if isinstance(j, int) else self.buf[f"s{i}_keep"][j]

    # ---------------------------------------------------------------- values
    def value(self, stage: int, j: Any, L: int) -> Any:
        """Column ``j`` after ``steps[:stage]`` for the current ``L`` rows (a vector of ``L`` lanes)."""
        T = self.T
        if stage == 0:
            if L == 1:
                return self.xf[self.row0 * self.n_in + j]
            return self.xf[self.tirx.Ramp(self.row0 * self.n_in + j, self.n_in, L)]
        i = stage - 1
        op = self.steps[i]
        if isinstance(op, Scaler):
            v = self.value(i, j, L)
            off, sc = self.bc(self.at(f"s{i}_offset", j), L), self.bc(self.at(f"s{i}_scale", j), L)
            return (v - off) / sc if op.mode == "sub_div" else v * sc + off
        if isinstance(op, Imputer):
            src = self.keep_of(i, j)
            v = self.value(i, src, L)
            missing = T.isnan(v)
            if f"s{i}_marker" in self.buf:
                markers = self.arrays[f"s{i}_marker"]
                if isinstance(src, int):
                    missing = missing if np.isnan(markers[src]) else v == self.bc(float(markers[src]), L)
                else:
                    nan_ok = self.bc(self.buf[f"s{i}_nan"][src] != 0, L)
                    missing = (missing & nan_ok) | (v == self.bc(self.buf[f"s{i}_marker"][src], L))
            return T.Select(missing, self.bc(self.at(f"s{i}_fill", src), L), v)
        assert isinstance(op, Normalizer)
        v, norm = self.value(i, j, L), self.norm[i][self.lanes(0, L)]
        if self.dt == "float64":
            return v / norm
        return T.Cast(self.vt(self.dt, L), T.Cast(self.vt("float64", L), v) / norm)

    @staticmethod
    def vt(dtype: str, L: int) -> str:
        return dtype if L == 1 else f"{dtype}x{L}"

    def lanes(self, base: Any, L: int) -> Any:
        return base if L == 1 else self.tirx.Ramp(base, 1, L)

    def columns(self, count: int, body: Any) -> None:
        """``body(j)`` for every column ``j < count``: unrolled (j an int) or as a serial loop."""
        if self.unroll and count <= MAX_UNROLLED:
            for j in range(count):
                body(j)
        else:
            with self.T.serial(0, count) as j:
                body(j)

    def norms(self, L: int) -> None:
        """Each Normalizer's row norms (``< NORM_TINY`` replaced by 1, as scikit-learn) into ``self.norm``, in
        float64 whatever the dtype (float32 squares overflow beyond 1.8e19)."""
        T = self.T
        wide = lambda value: self.bc(self.c(value, "float64"), L)  # noqa: E731
        for i, op in enumerate(self.steps):
            if not isinstance(op, Normalizer):
                continue
            acc = self.norm[i]
            at = self.lanes(0, L)
            T.buffer_store(acc, wide(0.0), [at])

            def add(j: Any, i: int = i, op: Normalizer = op, acc: Any = acc, at: Any = at) -> None:
                v = self.value(i, j, L)
                if self.dt != "float64":
                    v = T.Cast(self.vt("float64", L), v)
                a = T.fabs(v) if op.norm != "l2" else v * v
                if op.norm == "max":  # NaN sticks, as numpy's max
                    T.buffer_store(acc, T.Select(T.isnan(a) | (a > acc[at]), a, acc[at]), [at])
                else:
                    T.buffer_store(acc, acc[at] + a, [at])

            self.columns(op.n_features, add)
            n = T.sqrt(acc[at]) if op.norm == "l2" else acc[at]
            T.buffer_store(acc, T.Select(n < wide(NORM_TINY), wide(1.0), n), [at])

    # ---------------------------------------------------------------- epilogue
    def exp(self, v: Any, L: int, k: int, dt: str | None = None) -> Any:
        """``exp(v)`` in SIMD lanes of ``dt``, stored in and read back from ``tmp`` slot ``k`` (LLVM would call
        libm once per lane).  ``2**n * p(r)`` with ``r = v - n ln 2`` in two parts (Cody-Waite) and ``p`` the Taylor
        polynomial to a term below half an ulp on ``|r| <= ln(2) / 2``; ``2**n`` is built from the bits of
        ``n + 1.5 * 2**m`` (``m`` mantissa bits) in two factors, so that subnormal results and overflow to
        inf come out right; NaN stays NaN.  Intermediates go through the ``ex`` buffer (LLVM keeps them in
        registers), which keeps the expressions small."""
        T, tirx = self.T, self.tirx
        dt = dt or self.dt
        ex, tmp = self.ex[dt], self.tmp if dt == self.dt else self.tmp64
        wide = dt == "float64"
        it = "int64" if wide else "int32"
        mant, bias = (52, 1023) if wide else (23, 127)
        lo, hi = (-746.0, 709.79) if wide else (-104.0, 88.73)
        ln2_hi, ln2_lo = (0.6931471803691238, 1.9082149292705877e-10) if wide else (0.693359375, -2.12194440e-4)
        terms = 13 if wide else 7
        bc = lambda value: self.bc(self.c(float(value), dt), L)  # noqa: E731
        vt = lambda d: self.vt(d, L)  # noqa: E731
        slot = lambda i: self.lanes(i * L, L)  # noqa: E731
        shifter = bc(1.5 * 2.0**mant)
        T.buffer_store(ex, v, [slot(0)])
        x = ex[slot(0)]
        T.buffer_store(ex, T.Select(x > bc(hi), bc(hi), T.Select(x < bc(lo), bc(lo), x)), [slot(0)])  # NaN passes
        T.buffer_store(ex, T.floor(x * bc(1.4426950408889634) + bc(0.5)), [slot(1)])
        n = ex[slot(1)]
        T.buffer_store(ex, (x - n * bc(ln2_hi)) - n * bc(ln2_lo), [slot(2)])
        r = ex[slot(2)]
        T.buffer_store(ex, bc(1.0 / _factorial(terms)), [slot(0)])
        for i in range(terms - 1, -1, -1):
            T.buffer_store(ex, ex[slot(0)] * r + bc(1.0 / _factorial(i)), [slot(0)])
        T.buffer_store(ex, T.floor(n * bc(0.5)), [slot(2)])

        def two_to(m: Any) -> Any:  # 2**m for an integral float m in the normal exponent range
            bits = T.reinterpret(vt(it), m + shifter) + self.bc(tirx.const(bias, it), L)
            return T.reinterpret(vt(dt), bits << self.bc(tirx.const(mant, it), L))

        half = ex[slot(2)]
        T.buffer_store(tmp, ex[slot(0)] * two_to(half) * two_to(n - half), [slot(k)])
        return tmp[slot(k)]

    def finish(self, raw: list[Any], L: int) -> list[Any]:
        """The post-transform of the rows' raw scores ``raw[k]`` (vectors of ``L`` lanes)."""
        T, post, K, tmp = self.T, self.post, self.K, self.tmp
        kind = "identity" if post is None else post.kind
        slot = lambda i: self.lanes(i * L, L)  # noqa: E731
        if kind == "identity":
            return raw
        if kind == "softmax":
            m = raw[0]
            for r in raw[1:]:
                m = T.Select(r > m, r, m)
            T.buffer_store(tmp, m, [slot(K)])
            for k, r in enumerate(raw):
                self.exp(r - tmp[slot(K)], L, k)
            T.buffer_store(tmp, self.total(tmp, K, L), [slot(K)])
            return [tmp[slot(k)] / tmp[slot(K)] for k in range(K)]
        if kind == "ovr_normalize" and K > 1:
            return self.ovr_normalize(raw, L)
        one = self.bc(1.0, L)
        for k, r in enumerate(raw):
            if kind in ("sigmoid", "ovr_normalize"):
                e = self.exp(-(self.bc(post.param if kind == "sigmoid" else 1.0, L) * r), L, k)
                T.buffer_store(tmp, one / (one + e), [slot(k)])
            elif kind == "exp":
                self.exp(r, L, k)
            elif kind == "isolation":  # -(2 ** (-raw / param))
                e = self.exp(-r / self.bc(post.param, L) * self.bc(float(np.log(2.0)), L), L, k)
                T.buffer_store(tmp, -e, [slot(k)])
            else:  # pragma: no cover - every PostTransform kind is handled
                raise InvalidConfigError(f"fused_linear has no rule for post-transform {kind!r}")
        return [tmp[slot(k)] for k in range(K)]

    def total(self, buf: Any, count: int, L: int) -> Any:
        s = buf[self.lanes(0, L)]
        for k in range(1, count):
            s = s + buf[self.lanes(k * L, L)]
        return s

    def ovr_normalize(self, raw: list[Any], L: int) -> list[Any]:
        """``p = sigmoid(raw)``, ``p / sum(p)`` (uniform where every ``p`` is 0, as scikit-learn) in float64
        whatever the dtype: float32 sigmoids of scores below -88 are 0, float64 ones are not."""
        T, K, tmp = self.T, self.K, self.tmp64
        wide = lambda value: self.bc(self.c(value, "float64"), L)  # noqa: E731
        slot = lambda i: self.lanes(i * L, L)  # noqa: E731
        for k, r in enumerate(raw):
            e = self.exp(-T.Cast(self.vt("float64", L), r), L, k, "float64")
            T.buffer_store(tmp, wide(1.0) / (wide(1.0) + e), [slot(k)])
        T.buffer_store(tmp, self.total(tmp, K, L), [slot(K)])
        s = tmp[slot(K)]
        zero = s == wide(0.0)
        return [T.Cast(self.vt(self.dt, L), T.Select(zero, wide(1.0 / K), tmp[slot(k)] / T.Select(zero, wide(1.0), s)))
                for k in range(K)]

    # ---------------------------------------------------------------- rows
    def rows(self, row0: Any, L: int) -> None:
        """Rows ``row0 .. row0 + L - 1`` (all valid): preprocessing, accumulation, epilogue, store."""
        T, K = self.T, self.K
        self.row0 = row0
        self.norms(L)
        acc = self.acc
        for k in range(K):
            T.buffer_store(acc, self.bc(0.0, L), [self.lanes(k * L, L)])

        def add(j: Any) -> None:
            v = self.value(len(self.steps), j, L)
            for k in range(K):
                at = self.lanes(k * L, L)
                w = self.buf["weight"][j * K + k]
                T.buffer_store(acc, acc[at] + v * self.bc(w, L), [at])

        self.columns(self.F, add)
        raw = [acc[self.lanes(k * L, L)] + self.bc(self.buf["bias"][k], L) for k in range(K)]
        res = self.finish(raw, L)
        if L == 1:
            for k in range(K):
                T.buffer_store(self.of, res[k], [row0 * K + k])
            return
        # one interleaved store of the K x L results (row-major rows)
        for k in range(K):
            T.buffer_store(self.tmp, res[k], [self.lanes(k * L, L)])
        tile = self.tirx.Shuffle([self.tmp[self.lanes(k * L, L)] for k in range(K)],
                                 [k * L + lane for lane in range(L) for k in range(K)])
        T.buffer_store(self.of, tile, [self.tirx.Ramp(row0 * K, 1, K * L)])

    def alloc(self, L: int) -> None:
        T = self.T
        self.acc = T.alloc_buffer((self.K * L,), self.dt, scope="global")
        self.tmp = T.alloc_buffer(((self.K + 1) * L,), self.dt, scope="global")
        self.ex = {dt: T.alloc_buffer((3 * L,), dt, scope="global") for dt in dict.fromkeys((self.dt, "float64"))}
        self.tmp64 = T.alloc_buffer(((self.K + 1) * L,), "float64", scope="global")
        self.norm = {i: T.alloc_buffer((L,), "float64", scope="global")
                     for i, op in enumerate(self.steps) if isinstance(op, Normalizer)}

    def block(self, b: Any) -> None:
        """Rows ``b*B ..`` of the block: in full vectors, the last one shifted back to end at the last row."""
        T, B, V, n = self.T, self.B, self.V, self.n
        self.alloc(V)
        count = T.min(B, n - b * B)
        if V == 1:
            with T.serial(0, count) as r:
                self.rows(b * B + r, 1)
            return
        with T.serial(0, (count + V - 1) // V) as v:
            self.rows(T.min(b * B + v * V, n - V), V)

    def blocks(self) -> None:
        T, B, n = self.T, self.B, self.n
        if self.parallel != "rows":
            with T.serial(0, (n + B - 1) // B) as b:
                self.block(b)
            return
        with T.If(n <= B):  # one block: no parallel launch (a launch costs ~10 us even when it runs serially)
            with T.Then():
                self.block(0)
            with T.Else():
                with T.parallel(0, (n + B - 1) // B) as b:
                    self.block(b)

    def build(self) -> Any:
        from tvm.script.ir_builder import IRBuilder

        T = self.T
        with IRBuilder() as ib:
            with T.prim_func():
                T.func_name("main")
                T.func_attr({"tir.noalias": True})
                xh, oh = T.arg("x", T.handle()), T.arg("out", T.handle())
                handles = {name: T.arg(name, T.handle()) for name in self.buffers}
                n = self.n = T.int32()
                size = self.np_dt.itemsize
                x = T.match_buffer(xh, (n, self.n_in), self.dt, align=size)
                out = T.match_buffer(oh, (n, self.K), self.dt, align=size)
                self.buf = {name: T.match_buffer(handles[name], (a.shape[0],), str(a.dtype))
                            for name, a in self.buffers.items()}
                self.xf = T.decl_buffer((n * self.n_in,), self.dt, data=x.data)
                self.of = T.decl_buffer((n * self.K,), self.dt, data=out.data)
                if self.V == 1:
                    self.blocks()
                else:
                    with T.If(n < self.V):  # fewer rows than one vector: the scalar code
                        with T.Then():
                            self.alloc(1)
                            with T.serial(0, n) as r:
                                self.rows(r, 1)
                        with T.Else():
                            self.blocks()
        return ib.get()
