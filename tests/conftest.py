"""Shared test set-up."""

import signal

# A test run started in the background (`nohup`, `cmd &` in a script) ignores SIGINT, and the commands the
# tests start inherit that: `inti-edge run` then never sees the Ctrl-C that the streaming tests send it.
# Python's own handler here means a child starts with the default disposition and installs its own.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
