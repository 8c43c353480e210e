"""Pure call-quality library: RFC 3550 jitter, loss and bursts, playout, ITU-T E-model, reports.

Nothing here does I/O or reads a clock: every function takes time as an argument, so the
live bridge, replay and the load harness get identical figures from identical inputs.
"""
