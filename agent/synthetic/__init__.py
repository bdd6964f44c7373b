"""Synthetic inspection frames: the demo model's training data and the agent's ``synthetic:`` camera."""

from agent.synthetic.parts import DEFECT_LABELS, LABELS, render_part

__all__ = ["DEFECT_LABELS", "LABELS", "render_part"]
