"""Retraining: from collected, labeled frames and the user's own Keras model to a validated int8 package.

``inspection-agent train`` and the demo scripts (``scripts/train_demo.py``) share
these modules. TensorFlow is imported only inside :mod:`agent.train.backend`, so
reading data, metrics and reports need nothing beyond the agent's own dependencies.
"""
