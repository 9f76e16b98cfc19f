"""Mermaid state diagrams of a model, drawn by ``transitions``' Mermaid backend.

The machine is built from the IR only to draw it: each state shows its public status label, each
edge its trigger and the roles allowed to send it, and a note on each state lists the SLA clocks
running there and what their lapse does.
"""

from __future__ import annotations

from typing import Any

from transitions.core import State as MachineState
from transitions.extensions.diagrams import GraphMachine

from engine.domain.model import Model

__all__ = ["mermaid"]


class _LabelledState(MachineState):
    """A state that carries the label the Mermaid backend prints (name + public status)."""

    def __init__(self, *args: Any, label: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.label = label


class _DrawingMachine(GraphMachine):
    state_cls = _LabelledState


class _Drawing:
    """The model object ``transitions`` attaches ``get_graph`` to."""

    get_graph: Any


def mermaid(model: Model) -> str:
    states: list[dict[str, Any]] = [
        {"name": s.name, "label": f"{s.name}: {s.status}", "final": s.final}
        for s in model.states.values()
    ]
    edges: list[dict[str, Any]] = []
    for t in model.transitions.values():
        for source in t.sources:
            edges.append(
                {
                    "trigger": t.trigger,
                    "source": source,
                    "dest": t.target,
                    "label": f"{t.trigger} ({', '.join(t.roles)})",
                }
            )
    drawing = _Drawing()
    _DrawingMachine(
        model=drawing,
        states=states,
        transitions=edges,
        initial=model.initial,
        graph_engine="mermaid",
        auto_transitions=False,
        show_state_attributes=False,
        title=f"{model.name} {model.version}",
    )
    lines = drawing.get_graph().draw(None).splitlines()
    lines = [line for line in lines if not line.strip().startswith(("classDef", "Class "))]
    lines.extend(f"  {s.name} --> [*]" for s in model.states.values() if s.final)
    for state in model.states.values():
        notes = []
        for clock in model.clocks:
            duration = clock.duration.default
            if clock.duration.by:
                choices = ", ".join(f"{v}: {d}" for v, d in clock.duration.values)
                length = f"{clock.duration.by} ({choices})"
            else:
                length = str(duration)
            lapse = (
                f"escalate via ladder {clock.escalate}" if clock.escalate else f"fire {clock.fire}"
            )
            if state.name in clock.runs_in:
                notes.append(f"⏱ {clock.name}: {length}, on lapse {lapse}")
            elif state.name in clock.pauses_in:
                notes.append(f"⏸ {clock.name} paused")
        if notes:
            lines.append(f"  note right of {state.name}")
            lines.extend(f"    {note}" for note in notes)
            lines.append("  end note")
    return "\n".join(lines) + "\n"
