"""One module per CLI command: a Typer-typed function that parses, calls the package, prints.

Heavy imports (torch, onnx, av) stay inside the functions, so `inti-edge --help` is instant and a
deploy-only install never imports training code.
"""
