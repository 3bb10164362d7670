"""Keyboard stepping anywhere on the page (not while typing in a field): ← / → the previous or
next checkpoint, Home / End the first or last, space plays or pauses, [ / ] the previous or
next neuron. The browser sends the action's name; ``on_key(action)`` does the rest."""

from __future__ import annotations

from typing import Callable

from panel.custom import JSComponent

ACTIONS = ("prev", "next", "first", "last", "play", "prev_neuron", "next_neuron")


class Keys(JSComponent):
    """An invisible component listening to the page's key presses."""

    _esm = """
    const KEYS = {ArrowLeft: "prev", ArrowRight: "next", Home: "first", End: "last", " ": "play",
                  "[": "prev_neuron", "]": "next_neuron"}
    export function render({ model }) {
      const onkey = (event) => {
        const target = event.composedPath()[0]
        const typing = target && (["INPUT", "TEXTAREA", "SELECT", "BUTTON"].includes(target.tagName)
                                  || target.isContentEditable || target.classList?.contains("noUi-handle"))
        const action = KEYS[event.key]
        if (typing || !action || event.ctrlKey || event.metaKey || event.altKey) return
        event.preventDefault()
        model.send_msg(action)
      }
      document.addEventListener("keydown", onkey)
      model.on("remove", () => document.removeEventListener("keydown", onkey))
      return document.createElement("span")
    }
    """

    def __init__(self, on_key: Callable[[str], None], **params):
        super().__init__(width=0, height=0, margin=0, **params)
        self._on_key = on_key

    def _handle_msg(self, action) -> None:
        if action in ACTIONS:
            self._on_key(action)

