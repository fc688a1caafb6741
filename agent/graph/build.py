"""The design graph: intake → objective → architecture (→ context) → efficiency (loop) → tokenization
→ inference → report, compiled with a checkpointer so a session survives a crash or a question."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from qkv.agent.graph import routing


class DesignState(TypedDict, total=False):
    """What the graph carries between steps (plain JSON-able dicts: checkpoints stay portable)."""

    request: dict[str, Any]
    task: dict[str, Any]
    assumptions: list[dict[str, Any]]
    objective: dict[str, Any]
    architecture: dict[str, Any]
    layer_profile: dict[str, Any]
    pretraining: dict[str, Any] | None
    efficiency: dict[str, Any]
    rung: int
    tokenization: dict[str, Any]
    inference: dict[str, Any]
    report: dict[str, Any]
    unavailable: list[str]
    changed: list[str]
    calls: Annotated[list[dict[str, Any]], operator.add]


# The topology, as data: both executors below walk exactly this.
NODES: dict[str, str] = {
    "intake": "qkv.agent.graph.nodes.intake:intake_node",
    "objective": "qkv.agent.graph.nodes.objective:objective_node",
    "architecture": "qkv.agent.graph.nodes.architecture:architecture_node",
    "context": "qkv.agent.graph.nodes.architecture:context_node",
    "efficiency": "qkv.agent.graph.nodes.efficiency:efficiency_node",
    "tokenization": "qkv.agent.graph.nodes.tokenization:tokenization_node",
    "inference": "qkv.agent.graph.nodes.inference:inference_node",
    "report": "qkv.agent.graph.nodes.report:report_node",
}
EDGES: dict[str, str | None] = {"intake": "objective", "objective": "architecture", "context": "efficiency",
                                "tokenization": "inference", "inference": "report", "report": None}
ROUTERS = {"architecture": (routing.after_architecture, ["context", "efficiency"]),
           "efficiency": (routing.after_efficiency, ["efficiency", "tokenization"])}


def node_fn(name: str):
    import importlib

    module, attr = NODES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def next_node(name: str, state: dict[str, Any]) -> str | None:
    """The step after `name` (None: the end), by the static edges and the pure routers."""
    if name in ROUTERS:
        return ROUTERS[name][0](state)
    return EDGES[name]


def run_plain(state: dict[str, Any], max_steps: int = 60) -> dict[str, Any]:
    """Run the graph in-process without LangGraph or a checkpointer: the same nodes and routing, for a
    one-shot, non-interactive `design()` (it saves importing LangGraph, ~1-3 s of a cold CLI run)."""
    from qkv.tools.errors import BadInput

    node: str | None = "intake"
    for _ in range(max_steps):
        if node is None:
            return state
        update = node_fn(node)(state)
        state.update({k: v for k, v in update.items() if k != "calls"})
        node = next_node(node, state)
    raise BadInput("the design graph did not finish", expected=f"at most {max_steps} steps")


def build_graph(checkpointer=None):
    """Compile the state machine (nodes are small functions; routing is pure)."""
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(DesignState)
    for name in NODES:
        g.add_node(name, node_fn(name))
    g.add_edge(START, "intake")
    for name, target in EDGES.items():
        g.add_edge(name, target if target is not None else END)
    for name, (router, targets) in ROUTERS.items():
        g.add_conditional_edges(name, router, targets)
    return g.compile(checkpointer=checkpointer)
