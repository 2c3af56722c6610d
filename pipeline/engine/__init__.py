"""TensorRT engine building, shared by the `engine` stage and the device bundles.

The modules that `pipeline.packaging.device_build.SHIPPED` lists use only the standard
library and relative imports (tensorrt, numpy and torch are imported inside functions),
so the Jetson bundle ships them verbatim as `edgepack_engine/`: the script that builds on
the device runs exactly the code that is unit-tested here.
"""
