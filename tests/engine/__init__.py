"""The real-engine test tier: the project's images built and its containers run on a Docker engine.

`daemon` starts dockerd in a network namespace of its own (nothing it runs can reach beyond this
machine's loopback and that namespace), `cache` finds what `scripts/bootstrap` prepared (the
engine, the stand-in base image, the local package mirror), `images` imports the base, serves the
mirror to builds and builds Dockerfiles with BuildKit. docs/engine-tests.md has the recipe.
"""
