"""Family-neutral checkpoint loading: safetensors I/O, strict key/shape checks, streaming into
modules, and the one recognition table (``recognise.py``)."""
