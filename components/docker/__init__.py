"""The Docker wing: the neutral stack on one Docker host (`stack.py`), and how a service spec
becomes a container there (`platform.py`)."""
