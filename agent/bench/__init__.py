"""``inspection-agent bench``: what the pipeline costs on top of the model, measured on this machine."""
