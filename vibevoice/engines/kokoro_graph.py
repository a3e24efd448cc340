"""Lookups and edits over an ONNX graph, shared by Kokoro's conversions (needs ``onnx``).

A leaf: :mod:`kokoro_model` (the int8 rewrite, the prosody controls) and :mod:`kokoro_float` (the
float rewrite) both build on it, and it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # onnx is imported lazily, only when converting
    import onnx


class Rewriter:
    """Lookups over an ONNX graph, plus the nodes and constants being added."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        from onnx import helper, numpy_helper

        self.graph, self.helper, self.numpy_helper = graph, helper, numpy_helper
        self.producer = {out: n for n in graph.node for out in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.inits = {t.name: t for t in graph.initializer}
        self.insert: dict[int, list[onnx.NodeProto]] = {}  # id(old) -> replacement
        self.drop: set[int] = set()
        self.added: set[str] = set()

    def array(self, name: str) -> np.ndarray:
        return self.numpy_helper.to_array(self.inits[name])

    def const(self, name: str, value: np.ndarray | Callable[[], np.ndarray]) -> str:
        """A new initializer; a callable value is computed once per name (weights shared by nodes)."""
        if name not in self.added:
            self.added.add(name)
            value = value() if callable(value) else value
            self.graph.initializer.append(self.numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> onnx.NodeProto:
        return self.helper.make_node(op, inputs, [output], name=output, **attrs)

    def only_consumer(self, name: str, op_type: str) -> onnx.NodeProto:
        users = self.consumers.get(name, [])
        if len(users) != 1 or users[0].op_type != op_type:
            found = [u.op_type for u in users]
            raise ValueError(f"{name!r}: expected one {op_type} consumer, found {found}")
        return users[0]

    def other_input(self, node: onnx.NodeProto, known: str) -> str:
        (other,) = [name for name in node.input if name != known]
        return other

    def apply(self) -> None:
        """Rebuild the node list with the planned replacements, in order."""
        nodes: list[onnx.NodeProto] = []
        for node in self.graph.node:
            if id(node) not in self.drop:
                nodes.extend(self.insert.get(id(node), [node]))
        del self.graph.node[:]
        self.graph.node.extend(nodes)


def attrs(g: Rewriter, node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: g.helper.get_attribute_value(a) for a in node.attribute}


def quantiser_tail(g: Rewriter, conv: onnx.NodeProto) -> tuple[onnx.NodeProto | None, onnx.NodeProto, onnx.NodeProto]:
    """The quantiser's ``[Add(int bias)] -> Cast -> Mul(scale)`` after a ConvInteger."""
    out = conv.output[0]
    users = g.consumers.get(out, [])
    add = users[0] if len(users) == 1 and users[0].op_type == "Add" else None
    cast = g.only_consumer(add.output[0] if add else out, "Cast")
    return add, cast, g.only_consumer(cast.output[0], "Mul")


def prune(graph: onnx.GraphProto) -> None:
    """Drop nodes and initializers that no longer lead to an output."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def constant(g: Rewriter, name: str) -> np.ndarray | None:
    """The value of an initializer or a Constant node's output, else None."""
    if name in g.inits:
        return g.array(name)
    node = g.producer.get(name)
    if node is not None and node.op_type == "Constant":
        return g.numpy_helper.to_array(node.attribute[0].t)
    return None
