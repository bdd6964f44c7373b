"""Dataset formats the collector writes and reads, one module per tool's convention.

* :mod:`.boxes`: human boxes kept beside a sample, and the boxes an export uses for it.
* :mod:`.detection`: ``coco`` (``[x, y, w, h]`` in pixels from the top-left corner) and ``yolo``
  (``class cx cy w h`` normalised to 0..1), one folder per train/val/test split.
* :mod:`.label_studio`: tasks with the model's pre-annotation and the labeling config out;
  finished annotations back in as review votes.

``imagefolder`` and ``csv`` stay in :mod:`agent.collector.dataset`. Every format writes the
same ``provenance.jsonl``: one line per sample saying how it got its label.
"""
