"""The TokenInterpolation op outside PyTorch: one contract, three forms.

  spec.py     names, namespace, version and fields of the op (one source of truth; plugins/ compiles
              the header `python -m inti_edge.plugin.spec --header` writes)
  fields.py   a TokenInterpolation module as those fields (ONNX attributes, kernel arguments)
  node.py     the ONNX node and its local function; inline / fold for the precision tools
  kernels.py  the CUDA kernels of plugins/ as a PyTorch extension (built on first use)
"""
