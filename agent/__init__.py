"""Edge inspection agent: camera frames in, quantized model, MQTT results and defect events out."""

__version__ = "0.1.0"
