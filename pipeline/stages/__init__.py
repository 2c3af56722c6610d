"""The build's stages, one module each; `pipeline.runner.STAGES` puts them in order.

Each module defines `STAGE`; its own imports (and those of the project modules it uses)
stay cheap, with heavy packages imported inside functions, so `edgepack --help` and a
fully cached build start without torch. Nothing is imported here: a stage's cache key
covers the packages above its module, and importing the others would tie them together.
"""
