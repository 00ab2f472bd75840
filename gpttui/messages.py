"""Textual messages between the app and the widgets of its tabs.

Widgets never hold the engine host. The app forwards the engine events a tab
needs as `EngineEvent`, and a tab requests an engine command by
posting `SendCommand`, which bubbles up to the app.
"""

from __future__ import annotations

from textual.message import Message

from engine.events import Command, Event


class EngineEvent(Message, bubble=False):
    """An engine event for the widget it is posted to.

    The app posts ParameterSnapshot to the widget with id "parameters-body"
    and ProfileStarted and ProfileCaptured to "profiler-body".
    """

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class SendCommand(Message):
    """A request from a widget that the app send `command` to the engine."""

    def __init__(self, command: Command) -> None:
        super().__init__()
        self.command = command
