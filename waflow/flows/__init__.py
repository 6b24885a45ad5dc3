"""Conversation flows: declared state machines whose state lives in the store.

:class:`Flow` and :class:`State` declare a flow (checked when the class is created, drawn with
:meth:`Flow.mermaid`); :class:`Transition` is what :meth:`Flow.match` hands the engine.
"""

from waflow.flows.flow import Flow, State, Transition

__all__ = ["Flow", "State", "Transition"]
