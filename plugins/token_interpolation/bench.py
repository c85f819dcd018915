"""The plugin benchmark is the `plugin` suite of `inti-edge bench` (inti_edge/bench/plugin_suite.py); this runs it alone."""
import sys, pathlib; sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2])); from inti_edge.bench.plugin_suite import main; main()  # noqa: E401,E402,E702
